"""The docker-archive images of tests/harness/images.py are what containerd expects, byte for byte stable."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from tests.harness import images

pytestmark = pytest.mark.skipif(not images.busybox_available(), reason="needs /bin/busybox (busybox-static)")


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_archive_names_its_layer_by_the_layer_digest() -> None:
    layer = images.busybox_layer()
    files = members(images.docker_archive(images.PAUSE, layer))
    (manifest,) = json.loads(files["manifest.json"])
    assert manifest["RepoTags"] == [images.PAUSE_IMAGE]
    config = json.loads(files[manifest["Config"]])
    assert manifest["Config"] == hashlib.sha256(files[manifest["Config"]]).hexdigest() + ".json"
    (layer_path,) = manifest["Layers"]
    assert files[layer_path] == layer
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Entrypoint"] == images.PAUSE.entrypoint


def test_layer_has_busybox_and_its_applets_and_is_reproducible() -> None:
    layer = images.busybox_layer()
    assert layer == images.busybox_layer()
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        entries = {m.name: m for m in tar.getmembers()}
    assert entries["bin/busybox"].isfile() and entries["bin/busybox"].mode == 0o755
    for applet in ("sh", "httpd", "sleep", "hostname"):
        assert entries[f"bin/{applet}"].issym() and entries[f"bin/{applet}"].linkname == "busybox"
    assert entries["tmp"].mode == 0o1777
