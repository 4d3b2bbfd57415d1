"""The docker-archive images of tests/harness/images.py are what containerd expects, byte for byte stable."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
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


def final_stage(dockerfile: str) -> dict[str, list[str]]:
    """The final stage's instructions, continuation lines joined: {"ENV": [args, ...], "USER": [...], ...}."""
    joined = re.sub(r"\s*\\\n\s*", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    stage: dict[str, list[str]] = {}
    for line in lines[last_from + 1:]:
        instruction, _, arguments = line.partition(" ")
        stage.setdefault(instruction.upper(), []).append(arguments.strip())
    return stage


def test_operator_image_is_the_dockerfiles_final_stage() -> None:
    """User, entrypoint, CMD, env, ports and labels agree with the Dockerfile that `make kind-demo` builds."""
    stage = final_stage((images.REPO_ROOT / "Dockerfile").read_text())
    spec = images.OPERATOR
    assert stage["USER"] == [spec.user] and spec.user == "65532:65532"
    assert [json.loads(e) for e in stage["ENTRYPOINT"]] == [spec.entrypoint]
    assert [json.loads(c) for c in stage["CMD"]] == [spec.cmd]
    assert [p + "/tcp" for e in stage["EXPOSE"] for p in e.split()] == spec.exposed_ports
    labels = dict(pair.split("=", 1) for e in stage["LABEL"] for pair in shlex.split(e))
    assert labels == spec.labels
    # ENV PATH=/opt/ballast/bin:$PATH: the base image's PATH is Debian's here, python:3.11-slim's there.
    env = dict(pair.split("=", 1) for e in stage["ENV"] for pair in shlex.split(e))
    env["PATH"] = env["PATH"].replace("$PATH", images.DEBIAN_PATH)
    assert env == dict(pair.split("=", 1) for pair in spec.env)
    # The Dockerfile's user is created by useradd with the same uid; the venv is where PATH looks first.
    assert any(f"--uid {images.OPERATOR_UID}" in run for run in stage["RUN"])
    assert "COPY --from=build /opt/ballast /opt/ballast" in [f"COPY {c}" for c in stage["COPY"]]


def test_stage_parser_reads_the_last_stage_only() -> None:
    stage = final_stage('FROM a AS b\nUSER 1\nENV X=1\nFROM c\n# USER 3\nENV Y="two words" \\\n    Z=3\nUSER 2\n')
    assert stage == {"ENV": ['Y="two words" Z=3'], "USER": ["2"]}


def test_python_images_are_cached_by_their_inputs(tmp_path) -> None:
    """A cached layer is found by name without running mmdebstrap; other inputs give another name."""
    argv = ["mmdebstrap", "--variant=essential", f"--include={','.join(images.PYTHON_PACKAGES)}", "--format=tar",
            images.DEBIAN_SUITE]
    cached = tmp_path / f"python-base-{images.inputs_key(argv)}.tar"
    cached.write_bytes(b"a layer")
    assert images.python_base_layer(tmp_path) == cached
    assert images.inputs_key(["a", b"b"]) == images.inputs_key([b"a", "b"]) != images.inputs_key(["ab"])


def test_multi_layer_archive_lists_layers_in_order(tmp_path) -> None:
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    first.write_bytes(images.files_layer({"app/a.py": b"print(1)\n"}))
    second.write_bytes(images.files_layer({"app/b.py": b"print(2)\n"}))
    archive = images.write_archive(images.DEMO_APP, [first, second], tmp_path / "image.tar")
    files = members(archive.read_bytes())
    (manifest,) = json.loads(files["manifest.json"])
    config = json.loads(files[manifest["Config"]])
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)]
    assert manifest["Layers"] == [f"{d}/layer.tar" for d in digests]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{d}" for d in digests]
    assert config["config"]["User"] == "65532" and config["config"]["Entrypoint"] == ["python3", "/app/app.py"]
    with tarfile.open(fileobj=io.BytesIO(files[manifest["Layers"][0]])) as tar:
        entries = {m.name: m for m in tar.getmembers()}
    assert entries["app"].isdir() and entries["app/a.py"].mode == 0o644
