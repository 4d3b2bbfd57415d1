"""Container images for the local real node, built without Docker or a registry.

containerd imports a docker-archive tar (`ctr -n k8s.io images import`): a `manifest.json` naming a
config JSON and the layer tars, where the config's `rootfs.diff_ids` lists the sha256 of each
(uncompressed) layer tar. That is all an image is, so we write them ourselves:

- busybox images, from Debian's `busybox-static`: a single layer with /bin/busybox and a symlink per
  applet. It makes the pause image (containerd's `sandbox_image`, which only has to sleep) and a small
  shell/httpd image for test pods. Written deterministically (fixed mtimes and owners), so the same
  busybox gives the same image ID on every build.
- Python images, on a base layer that `mmdebstrap` makes from Debian packages (python3, python3-venv,
  ca-certificates; 1-2 minutes, once): the demo app (deploy/kind/demo-app/app.py in a second layer) and
  the operator (the project's wheel installed into /opt/ballast by the image's own python, the way the
  Dockerfile's build stage does, run as user 65532 with the Dockerfile's entrypoint, CMD and env).

The slow parts are cached under `~/.cache/ballast/images` (or `$BALLAST_CACHE_DIR/images`), each file
named by a hash of its inputs, so CI and reruns build nothing twice. Delete that directory to pick up
newer Debian packages.

Refer to an image by its full name with `imagePullPolicy: Never` (or IfNotPresent): there is no
registry to pull from.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
"""Debian's busybox-static installs here; a dynamically linked busybox would need its libraries."""
CACHE_DIR = Path(os.environ.get("BALLAST_CACHE_DIR")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ballast") / "images"
"""Where built layers and archives are kept (the same root as hack/lib/build-kubernetes.sh's cache)."""

PAUSE_IMAGE = "docker.io/library/ballast-pause:busybox"
BUSYBOX_IMAGE = "docker.io/library/ballast-busybox:static"
DEMO_APP_IMAGE = "docker.io/library/ballast-demo-app:local"
VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
OPERATOR_IMAGE = f"docker.io/library/ballast:{VERSION}"
"""What the chart's default `image` (repository ballast, tag = appVersion) resolves to."""

DEBIAN_SUITE = "bookworm"
PYTHON_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_BUILD_SECONDS = "60-120"
"""What mmdebstrap took on these 2-core machines (85 s measured), said before a first build."""

OPERATOR_UID = 65532


class ImageBuildError(Exception):
    """An image could not be built on this machine (a tool is missing or failed; the message says which)."""


@dataclass(frozen=True)
class ImageSpec:
    """An image's full name and its process config (what a Dockerfile's ENTRYPOINT, CMD, USER, ENV set)."""

    name: str
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""
    env: list[str] = field(default_factory=lambda: ["PATH=/bin"])
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


PAUSE = ImageSpec(PAUSE_IMAGE, entrypoint=["/bin/busybox", "sleep", "2147483647"])
"""A pod sandbox only holds the namespaces; containerd stops it with SIGKILL, so plain sleep serves."""
BUSYBOX_SHELL = ImageSpec(BUSYBOX_IMAGE, cmd=["/bin/sh"])
DEMO_APP = ImageSpec(
    DEMO_APP_IMAGE, entrypoint=["python3", "/app/app.py"], user=str(OPERATOR_UID),
    env=[f"PATH={DEBIAN_PATH}", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"], exposed_ports=["8080/tcp"],
)
OPERATOR = ImageSpec(
    OPERATOR_IMAGE,
    entrypoint=["ballast", "operator", "run"],
    cmd=["--log-format", "json"],
    user=f"{OPERATOR_UID}:{OPERATOR_UID}",
    env=[f"PATH=/opt/ballast/bin:{DEBIAN_PATH}", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"],
    exposed_ports=["8080/tcp", "8081/tcp", "9443/tcp"],
    labels={"org.opencontainers.image.title": "ballast",
            "org.opencontainers.image.description": "Release guardrails for Kubernetes"},
)
"""The Dockerfile's final stage, field for field (tests/unit/test_images.py holds the two together)."""


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


def files_layer(files: dict[str, bytes]) -> bytes:
    """A layer tar of regular files (path in the image -> content), readable by every user."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted({str(Path(path).parent) for path in files} - {"."}):
            _add(tar, directory, tarfile.DIRTYPE, 0o755)
        for path, data in sorted(files.items()):
            _add(tar, path, tarfile.REGTYPE, 0o644, data)
    return buffer.getvalue()


def image_config(spec: ImageSpec, diff_ids: list[str]) -> bytes:
    """The image config JSON: the process settings and the digests of the uncompressed layers."""
    process: dict[str, object] = {"Env": spec.env, "WorkingDir": "/"}
    if spec.entrypoint:
        process["Entrypoint"] = spec.entrypoint
    if spec.cmd:
        process["Cmd"] = spec.cmd
    if spec.user:
        process["User"] = spec.user
    if spec.exposed_ports:
        process["ExposedPorts"] = {port: {} for port in spec.exposed_ports}
    if spec.labels:
        process["Labels"] = spec.labels
    return json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}" for digest in diff_ids]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/harness/images.py"}] * len(diff_ids),
    }, sort_keys=True).encode()


def docker_archive(spec: ImageSpec, layer: bytes) -> bytes:
    """The docker-archive tar (what `docker save` writes) of a single-layer image held in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _write_archive(tar, spec, [(hashlib.sha256(layer).hexdigest(), io.BytesIO(layer), len(layer))])
    return buffer.getvalue()


def write_archive(spec: ImageSpec, layers: list[Path], path: Path) -> Path:
    """Write the docker-archive of an image whose layers are tar files on disk (streamed, not loaded)."""
    entries = []
    for layer in layers:
        with layer.open("rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()
        entries.append((digest, layer, layer.stat().st_size))
    with tarfile.open(path, mode="w") as tar:
        opened = [(digest, source.open("rb"), size) for digest, source, size in entries]
        try:
            _write_archive(tar, spec, opened)
        finally:
            for _, stream, _ in opened:
                stream.close()
    return path


def _write_archive(tar: tarfile.TarFile, spec: ImageSpec, layers: list[tuple[str, io.IOBase, int]]) -> None:
    config = image_config(spec, [digest for digest, _, _ in layers])
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{
        "Config": config_name, "RepoTags": [spec.name], "Layers": [f"{digest}/layer.tar" for digest, _, _ in layers],
    }]).encode()
    for digest, stream, size in layers:
        _add(tar, digest, tarfile.DIRTYPE, 0o755)
        info = tarfile.TarInfo(f"{digest}/layer.tar")
        info.mode, info.mtime, info.size = 0o644, 0, size
        tar.addfile(info, stream)
    _add(tar, config_name, tarfile.REGTYPE, 0o644, config)
    _add(tar, "manifest.json", tarfile.REGTYPE, 0o644, manifest)


def import_archive(ctr_argv: list[str], archive: Path) -> None:
    """`<ctr_argv> images import <archive>`; ImageBuildError with ctr's output if containerd refuses it.

    `ctr_argv` is the ctr command with its address and namespace, e.g.
    ["ctr", "--address", sock, "--namespace", "k8s.io"] (LocalNode.ctr).
    """
    result = subprocess.run([*ctr_argv, "images", "import", str(archive)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageBuildError(f"containerd refused {archive}: {result.stdout}{result.stderr}")


def import_images(ctr_argv: list[str], specs: list[ImageSpec], work_dir: Path) -> None:
    """Write each busybox image in `specs` as a docker-archive in `work_dir` and import it."""
    work_dir.mkdir(parents=True, exist_ok=True)
    layer = busybox_layer()
    for spec in specs:
        archive = work_dir / f"{spec.name.rsplit('/', 1)[-1].replace(':', '_')}.tar"
        archive.write_bytes(docker_archive(spec, layer))
        import_archive(ctr_argv, archive)


def busybox_available() -> bool:
    """Whether this machine can build the busybox images (Debian package busybox-static)."""
    return BUSYBOX.is_file() and shutil.which(str(BUSYBOX)) is not None


# -- Python images: cached by their inputs --------------------------------------------------------------

def inputs_key(parts: Iterable[bytes | str]) -> str:
    """A short hash naming a cached file after everything that went into it."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def _run(argv: list[str | Path], what: str) -> None:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}): {' '.join(map(str, argv))}\n{tail}")


def _keep(partial: Path, path: Path) -> Path:
    """Move a finished build into place and drop the older builds of the same thing (other input keys)."""
    partial.rename(path)
    prefix = path.name.rsplit("-", 1)[0]
    for older in path.parent.glob(f"{prefix}-*.tar"):
        if older != path and older.name.rsplit("-", 1)[0] == prefix:
            older.unlink(missing_ok=True)
    return path


def _say(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def python_base_layer(cache_dir: Path = CACHE_DIR) -> Path:
    """The Debian base layer with python3 (bookworm's 3.11), built by mmdebstrap once, then cached."""
    argv = ["mmdebstrap", "--variant=essential", f"--include={','.join(PYTHON_PACKAGES)}", "--format=tar",
            DEBIAN_SUITE]
    path = cache_dir / f"python-base-{inputs_key(argv)}.tar"
    if path.exists():
        return path
    if not shutil.which("mmdebstrap"):
        raise ImageBuildError("mmdebstrap is missing (Debian package mmdebstrap): it builds the Python base layer")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    _say(f"building the Python base layer from Debian {DEBIAN_SUITE} packages with mmdebstrap "
         f"(about {BASE_BUILD_SECONDS} s, once; cached as {path})")
    started = time.monotonic()
    _run([*argv, partial], "mmdebstrap")
    _keep(partial, path)
    _say(f"Python base layer built in {time.monotonic() - started:.0f} s")
    return path


def _cached_archive(spec: ImageSpec, layers: list[Path], key: str, cache_dir: Path) -> Path:
    path = cache_dir / f"{spec.name.rsplit('/', 1)[-1].replace(':', '_')}-{key}.tar"
    if not path.exists():
        _keep(write_archive(spec, layers, path.with_name(path.name + ".partial")), path)
    return path


def demo_app_archive(cache_dir: Path = CACHE_DIR) -> Path:
    """The demo app image (deploy/kind/demo-app/*.py under /app on the Python base), as a cached archive."""
    base = python_base_layer(cache_dir)
    sources = {f"app/{p.name}": p.read_bytes() for p in sorted((REPO_ROOT / "deploy/kind/demo-app").glob("*.py"))}
    app_layer = files_layer(sources)
    key = inputs_key([base.name, app_layer, image_config(DEMO_APP, [])])
    layer_path = cache_dir / f"demo-app-layer-{key}.tar"
    if not layer_path.exists():
        partial = layer_path.with_name(layer_path.name + ".partial")
        partial.write_bytes(app_layer)
        _keep(partial, layer_path)
    return _cached_archive(DEMO_APP, [base, layer_path], key, cache_dir)


def project_sources() -> list[Path]:
    """The files that make the project's wheel (what the Dockerfile's build stage copies in)."""
    found = [REPO_ROOT / "pyproject.toml", REPO_ROOT / "README.md"]
    found += [p for p in (REPO_ROOT / "operator").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    return sorted(found)


def operator_layer(base: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """/opt/ballast (a venv with the project's wheel and its dependencies) and the user 65532, as a layer.

    As in the Dockerfile's build stage, the image's own python makes the venv and pip installs the
    project into it, here in a chroot of the base layer, from wheels built on the host (no network
    inside). Cached by the base layer and the project's sources.
    """
    sources = project_sources()
    key = inputs_key([base.name, *(str(p.relative_to(REPO_ROOT)) for p in sources), *(p.read_bytes() for p in sources)])
    path = cache_dir / f"operator-layer-{key}.tar"
    if path.exists():
        return path
    if os.geteuid() != 0:
        raise ImageBuildError("building the operator image needs root (it installs the wheel in a chroot)")
    _say("building the operator layer: the project's wheel and dependencies into /opt/ballast (about 1 minute)")
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        root, wheels = Path(work) / "root", Path(work) / "root" / "tmp" / "wheels"
        wheels.mkdir(parents=True)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheels, REPO_ROOT], "pip wheel")
        _run(["tar", "-xf", base, "-C", root], "unpacking the base layer")
        _run(["chroot", root, "python3", "-m", "venv", "/opt/ballast"], "python3 -m venv in the image")
        _run(["chroot", root, "/opt/ballast/bin/pip", "install", "--quiet", "--no-cache-dir", "--no-index",
              "--find-links", "/tmp/wheels", "ballast"], "pip install in the image")
        # What the Dockerfile's `useradd --uid 65532 --no-create-home` adds (the essential variant has no useradd).
        with (root / "etc" / "passwd").open("a") as passwd:
            passwd.write(f"ballast:x:{OPERATOR_UID}:{OPERATOR_UID}::/home/ballast:/usr/sbin/nologin\n")
        with (root / "etc" / "group").open("a") as group:
            group.write(f"ballast:x:{OPERATOR_UID}:\n")
        partial = path.with_name(path.name + ".partial")
        _run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", partial,
              "-C", root, "opt", "etc/passwd", "etc/group"], "packing the operator layer")
        _keep(partial, path)
    return path


def operator_archive(cache_dir: Path = CACHE_DIR) -> Path:
    """The operator image (the Dockerfile's final stage, built without Docker), as a cached archive."""
    base = python_base_layer(cache_dir)
    layer = operator_layer(base, cache_dir)
    return _cached_archive(OPERATOR, [base, layer], inputs_key([layer.name, image_config(OPERATOR, [])]), cache_dir)


def main() -> int:
    """`python -m tests.harness.images`: build (or find cached) the Python images and print their archives."""
    for build in (demo_app_archive, operator_archive):
        try:
            print(build())
        except ImageBuildError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
