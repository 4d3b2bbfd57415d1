"""Self-signed serving certificates for the webhook when it runs outside a cluster.

In a cluster the chart mounts a certificate (cert-manager or chart-generated). Locally and in tests the
operator makes its own with ``cryptography`` (kopf's built-in generator needs the unmaintained
oscrypto). The certificate is its own CA, so the same PEM goes into the webhook's ``caBundle``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServingCertificate:
    certfile: Path
    keyfile: Path


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_self_signed(
    directory: Path, hosts: list[str], valid_for: timedelta = timedelta(days=365)
) -> ServingCertificate:
    """Write a self-signed certificate for ``hosts`` (DNS names or IPs) and its key; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths = ServingCertificate(directory / "tls.crt", directory / "tls.key")
    paths.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.keyfile.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths.keyfile.chmod(0o600)
    return paths
