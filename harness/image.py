"""Make sure the stack image exists, building it (and its base) only when needed.

Our CI machines have no container registry, so the base named by ``BASE_IMAGE`` usually can
neither be found nor pulled: we then bootstrap a minimal Debian with ``debootstrap`` (using its
default mirror, so no host name is written anywhere) and ``docker import`` it. The stack image
tag carries a content hash of ``slurm-stack/`` and the variant pins, so an unchanged tree never
rebuilds and a changed one never reuses a stale image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import STACK_DIR, Variant, image_tag
from harness.pins import available_versions, pin_message, pin_problems, unavailable_pins

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker

__all__ = [
    "BASE_REPOSITORY",
    "ImageError",
    "bootstrap_base",
    "build_stack_image",
    "ensure_image",
    "image_exists",
    "resolve_base",
]

BASE_REPOSITORY = "intercede-base"
Log = Callable[[str], None]


class ImageError(RuntimeError):
    """Raised when no base can be found or made, or the stack image fails to build."""


def _stderr(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def image_exists(cli: docker.DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        cli.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def bootstrap_base(cli: docker.DockerClient, suite: str, log: Log = _stderr) -> str:
    """debootstrap a minbase rootfs and import it; the result is cached as a local tag."""
    tag = f"{BASE_REPOSITORY}:{suite}"
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise ImageError(
            f"no base image for {suite}: install debootstrap (Debian: apt-get install "
            "debootstrap) or make the BASE_IMAGE available to the engine"
        )
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to build the base image; run as root")
    log(f"bootstrapping {tag} with debootstrap --variant=minbase {suite}")
    with tempfile.TemporaryDirectory(prefix=f"intercede-{suite}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [debootstrap, "--variant=minbase", suite, str(rootfs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise ImageError(f"debootstrap {suite} failed:\n{tail}")
        # Package caches only bloat the image; the build runs apt-get update anyway.
        for cache in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            cache.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repo, _, tagname = tag.partition(":")
        cli.api.import_image_from_file(str(tarball), repository=repo, tag=tagname)
    log(f"imported {tag}")
    return tag


def resolve_base(cli: docker.DockerClient, variant: Variant, log: Log = _stderr) -> str:
    """Prefer what the user has, then a pull, then our cached bootstrap, then a new one."""
    if image_exists(cli, variant.base_image):
        return variant.base_image
    if os.environ.get("INTERCEDE_NO_PULL", "0") != "1":
        import docker.errors
        from requests.exceptions import RequestException

        try:
            repo, _, tagname = variant.base_image.partition(":")
            cli.images.pull(repo, tag=tagname or "latest")
        except (docker.errors.DockerException, RequestException) as exc:
            # No registry is the normal case on our CI machines.
            log(f"cannot pull {variant.base_image} ({type(exc).__name__}); using a local base")
        else:
            return variant.base_image
    local = f"{BASE_REPOSITORY}:{variant.suite}"
    if image_exists(cli, local):
        return local
    return bootstrap_base(cli, variant.suite, log)


def build_stack_image(
    cli: docker.DockerClient,
    variant: Variant,
    tag: str,
    base: str,
    log: Log = _stderr,
    log_file: Path | None = None,
    nocache: bool = False,
) -> str:
    log(f"building {tag} from {base}")
    lines: list[str] = []
    raw: list[str] = []
    stream: Any = cli.api.build(
        path=str(STACK_DIR),
        tag=tag,
        buildargs=variant.build_args(base),
        rm=True,
        forcerm=True,
        pull=False,
        nocache=nocache,
        decode=True,
        labels={"org.intercede.variant": variant.name, "org.intercede.base": base},
    )
    sink = log_file.open("w") if log_file else None
    try:
        for chunk in stream:
            if "error" in chunk:
                tail = "\n".join(lines[-40:])
                stale = _stale_pins(cli, variant, base, "".join(raw), log)
                if stale:
                    raise ImageError(
                        f"building {tag} failed: {stale}\n--- build log tail ---\n{tail}"
                    )
                raise ImageError(f"building {tag} failed: {chunk['error']}\n{tail}")
            text = str(chunk.get("stream", ""))
            if not text:
                continue
            raw.append(text)
            if sink:
                sink.write(text)
            for line in text.splitlines():
                lines.append(line)
                if line.startswith("Step "):
                    log(line)
    finally:
        if sink:
            sink.close()
    if not image_exists(cli, tag):
        raise ImageError(f"build of {tag} finished without producing the image")
    return tag


def _stale_pins(
    cli: docker.DockerClient, variant: Variant, base: str, output: str, log: Log
) -> str | None:
    """A pin apt could not install, said plainly with the fix; None for any other failure."""

    missing = unavailable_pins(output)
    if not missing:
        return None
    log(f"variant {variant.name}: pinned versions not installable; asking {base} what it offers")
    try:
        offered = available_versions(cli, base)
    except Exception as exc:  # noqa: BLE001 - the pin message matters more than this probe
        log(f"could not ask {base} for its versions: {type(exc).__name__}: {exc}")
        offered = {}
    return pin_message(variant, pin_problems(variant, missing, offered))


def ensure_image(
    cli: docker.DockerClient,
    variant: Variant,
    log: Log = _stderr,
    log_file: Path | None = None,
) -> str:
    tag = image_tag(variant)
    if image_exists(cli, tag):
        return tag
    base = resolve_base(cli, variant, log)
    return build_stack_image(cli, variant, tag, base, log, log_file)
