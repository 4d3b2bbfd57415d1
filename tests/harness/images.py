"""Container images for the local real node, built without Docker or a registry.

containerd imports a docker-archive tar (`ctr -n k8s.io images import`): a `manifest.json` naming a
config JSON and the layer tars, where the config's `rootfs.diff_ids` lists the sha256 of each
(uncompressed) layer tar. That is all an image is, so we write one from Debian's `busybox-static`: a
single layer with /bin/busybox and a symlink per applet. The same layer makes the pause image
(containerd's `sandbox_image`, which only has to sleep) and a small shell/httpd image for test pods.
Layers are written deterministically (fixed mtimes and owners), so the same busybox gives the same
image ID on every build.

Refer to an image by its full name with `imagePullPolicy: Never` (or IfNotPresent): there is no
registry to pull from.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
"""Debian's busybox-static installs here; a dynamically linked busybox would need its libraries."""

PAUSE_IMAGE = "docker.io/library/ballast-pause:busybox"
BUSYBOX_IMAGE = "docker.io/library/ballast-busybox:static"


@dataclass(frozen=True)
class ImageSpec:
    """One single-layer image: its full name and the process config (Entrypoint/Cmd/User/Env)."""

    name: str
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""


PAUSE = ImageSpec(PAUSE_IMAGE, entrypoint=["/bin/busybox", "sleep", "2147483647"])
"""A pod sandbox only holds the namespaces; containerd stops it with SIGKILL, so plain sleep serves."""
BUSYBOX_SHELL = ImageSpec(BUSYBOX_IMAGE, cmd=["/bin/sh"])


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
    info.linkname = link
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def busybox_layer(busybox: Path = BUSYBOX) -> bytes:
    """A layer tar: /bin/busybox, /bin/<applet> -> busybox for every applet, and the usual empty dirs."""
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, mode in (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555),
                                ("sys", 0o555), ("tmp", 0o1777), ("var", 0o755)):
            _add(tar, directory, tarfile.DIRTYPE, mode)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in sorted(set(applets) - {"busybox"}):
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        passwd = b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, passwd)
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")
    return buffer.getvalue()


def docker_archive(spec: ImageSpec, layer: bytes) -> bytes:
    """The docker-archive tar (what `docker save` writes) of a single-layer image."""
    layer_digest = hashlib.sha256(layer).hexdigest()
    process: dict[str, object] = {"Env": ["PATH=/bin"], "WorkingDir": "/"}
    if spec.entrypoint:
        process["Entrypoint"] = spec.entrypoint
    if spec.cmd:
        process["Cmd"] = spec.cmd
    if spec.user:
        process["User"] = spec.user
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/harness/images.py"}],
    }, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{
        "Config": config_name, "RepoTags": [spec.name], "Layers": [f"{layer_digest}/layer.tar"],
    }]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, layer_digest, tarfile.DIRTYPE, 0o755)
        _add(tar, f"{layer_digest}/layer.tar", tarfile.REGTYPE, 0o644, layer)
        _add(tar, config_name, tarfile.REGTYPE, 0o644, config)
        _add(tar, "manifest.json", tarfile.REGTYPE, 0o644, manifest)
    return buffer.getvalue()


def import_images(ctr_argv: list[str], specs: list[ImageSpec], work_dir: Path) -> None:
    """Write each image as a docker-archive in `work_dir` and import it with `<ctr_argv> images import`.

    `ctr_argv` is the ctr command with its address and namespace, e.g.
    ["ctr", "--address", sock, "--namespace", "k8s.io"]. Raises CalledProcessError (with ctr's
    output) if containerd refuses an archive.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    layer = busybox_layer()
    for spec in specs:
        archive = work_dir / f"{spec.name.rsplit('/', 1)[-1].replace(':', '_')}.tar"
        archive.write_bytes(docker_archive(spec, layer))
        subprocess.run([*ctr_argv, "images", "import", str(archive)], capture_output=True, text=True, check=True)


def busybox_available() -> bool:
    """Whether this machine can build the busybox images (Debian package busybox-static)."""
    return BUSYBOX.is_file() and shutil.which(str(BUSYBOX)) is not None
