"""Install the generated CRDs into a cluster and wait until the API server serves them."""

from __future__ import annotations

import kubernetes
import yaml

from tests.harness import wait_for
from tests.harness.cluster import REPO_ROOT

CRD_DIR = REPO_ROOT / "crds"


def install_crds(api: kubernetes.client.ApiClient, timeout: float = 30) -> list[str]:
    """Create every CRD in crds/ (existing ones are kept) and wait until all are Established."""
    ext = kubernetes.client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        names.append(body["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(body)
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise

    def established() -> bool:
        return all(
            any(c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(name).status.conditions or [])
            for name in names
        )

    wait_for(established, timeout, "CRDs never became Established")
    return names
