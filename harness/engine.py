"""Find or start a container engine the harness can talk to.

CI machines and developer laptops differ: some run Docker, some Podman (whose API is
Docker-compatible), and our air-gapped CI boxes have the Debian packages but no engine running.
This module hides that: :func:`client` finds an answering API (``DOCKER_HOST``, then the default
socket, then the private socket this module starts), and :func:`ensure_engine` starts a private
``dockerd`` when nothing answers and we are allowed to (root on Debian). The private socket is
found again by later, separate processes without any environment variable.

Only commands that create something (``up``, ``e2e``, ``engine``) call :func:`ensure_engine`;
read-only ones (``status``, ``logs``, ``down``, ``ssh``) use :func:`client`, which never
installs or starts anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tenacity import (
    RetryError,
    retry,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from harness._lock import flock

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker

__all__ = [
    "DEFAULT_SOCKET",
    "ENGINE_LOCK",
    "PRIVATE_RUN_DIR",
    "PRIVATE_SOCKET",
    "EngineError",
    "EngineInfo",
    "candidate_hosts",
    "client",
    "ensure_engine",
    "find_engine",
]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
PRIVATE_SOCKET_PATH = "/run/intercede-docker.sock"
PRIVATE_SOCKET = f"unix://{PRIVATE_SOCKET_PATH}"
# Own exec-root, pidfile and data-root so a private daemon never fights a system one.
PRIVATE_RUN_DIR = Path("/run/intercede-docker")
PRIVATE_DATA_ROOT = Path("/var/lib/intercede-docker")
# Two harness processes finding no engine at once must not both install and start one.
ENGINE_LOCK = Path("/run/intercede-docker.lock")
# A package's postinst starts the system dockerd (systemd hosts); give it this long to answer.
SYSTEM_ENGINE_GRACE_S = 20.0


class EngineError(RuntimeError):
    """Raised when no container engine answers and none can be started here."""


@dataclass(frozen=True)
class EngineInfo:
    """Which API answered, so callers can report it and pass it on to child processes."""

    host: str
    version: str
    started_by_us: bool


def candidate_hosts() -> list[str]:
    """Order matters: an explicit DOCKER_HOST wins and is never second-guessed."""
    explicit = os.environ.get("DOCKER_HOST")
    if explicit:
        return [explicit]
    return [DEFAULT_SOCKET, PRIVATE_SOCKET]


def _ping(host: str, timeout: int = 5) -> docker.DockerClient | None:
    import docker
    from requests.exceptions import RequestException

    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return None
    try:
        cli = docker.DockerClient(base_url=host, timeout=timeout)
        cli.ping()
    except (docker.errors.DockerException, RequestException, OSError):
        # Any failure means "this one does not answer".
        return None
    return cli


def find_engine() -> EngineInfo | None:
    """Report the first answering API without starting anything."""
    for host in candidate_hosts():
        cli = _ping(host)
        if cli is not None:
            version = str(cli.version().get("Version", "?"))
            cli.close()
            return EngineInfo(host=host, version=version, started_by_us=False)
    return None


def client(timeout: int = 300) -> docker.DockerClient:
    """Return a client for the first answering engine.

    Separate processes (``python -m harness up`` after ``python -m harness engine``) must find
    the private socket on their own, hence the fixed candidate list instead of state files.
    """
    for host in candidate_hosts():
        cli = _ping(host)
        if cli is not None:
            cli.close()
            import docker

            return docker.DockerClient(base_url=host, timeout=timeout)
    raise EngineError(
        "no container engine answers at "
        + ", ".join(candidate_hosts())
        + "; run `python -m harness engine` (root on Debian) or start Docker/Podman "
        "and set DOCKER_HOST"
    )


def _is_debian() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return "ID=debian" in text or "ID_LIKE=debian" in text


def _install_docker() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "docker.io"], check=True, env=env)


def _start_dockerd() -> Path:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineError("dockerd not found after installing docker.io")
    PRIVATE_RUN_DIR.mkdir(parents=True, exist_ok=True)
    PRIVATE_DATA_ROOT.mkdir(parents=True, exist_ok=True)
    log_path = PRIVATE_RUN_DIR / "dockerd.log"
    argv = [
        dockerd,
        "--host",
        PRIVATE_SOCKET,
        "--data-root",
        str(PRIVATE_DATA_ROOT),
        "--exec-root",
        str(PRIVATE_RUN_DIR / "exec"),
        "--pidfile",
        str(PRIVATE_RUN_DIR / "dockerd.pid"),
    ]
    with log_path.open("ab") as log:
        # A new session keeps the daemon alive after this short-lived CLI process exits.
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return log_path


def _wait_private(deadline_s: float) -> docker.DockerClient:
    @retry(
        stop=stop_after_delay(deadline_s),
        wait=wait_fixed(0.5),
        retry=retry_if_result(lambda c: c is None),
    )
    def attempt() -> docker.DockerClient | None:
        return _ping(PRIVATE_SOCKET, timeout=2)

    cli = attempt()
    assert cli is not None
    return cli


def _has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def _wait_found(deadline_s: float) -> EngineInfo | None:
    """Poll :func:`find_engine` until something answers or the deadline passes."""

    @retry(
        stop=stop_after_delay(deadline_s),
        wait=wait_fixed(0.5),
        retry=retry_if_result(lambda found: found is None),
        retry_error_callback=lambda _state: None,
    )
    def attempt() -> EngineInfo | None:
        return find_engine()

    result: EngineInfo | None = attempt()
    return result


def _say(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def ensure_engine(deadline_s: float = 60.0) -> EngineInfo:
    """Make sure an engine answers, starting a private dockerd if we may.

    Only root on Debian may install and start one: elsewhere we say what to install rather
    than guessing at a package manager. Installing ``docker.io`` on a systemd host starts the
    system daemon, so we look again after installing and start ours only if nothing answers.
    """
    found = find_engine()
    if found is not None:
        return found
    if os.environ.get("DOCKER_HOST"):
        raise EngineError(
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; start that engine or "
            "unset DOCKER_HOST to let the harness start a private dockerd"
        )
    if os.geteuid() != 0 or not _is_debian():
        raise EngineError(
            "no container engine answers. Install and start Docker (Debian: `apt-get install "
            "docker.io`) or Podman (`podman system service` and set DOCKER_HOST), then retry."
        )
    with flock(ENGINE_LOCK):
        # Whoever held the lock before us may have started an engine in the meantime.
        found = find_engine()
        if found is not None:
            return found
        if shutil.which("dockerd") is None:
            _say("no container engine answers; installing docker.io")
            _install_docker()
            found = _wait_found(SYSTEM_ENGINE_GRACE_S) if _has_systemd() else find_engine()
            if found is not None:
                _say(f"the docker.io package started an engine: {found.host}")
                return found
        return _start_private(deadline_s)


def _start_private(deadline_s: float) -> EngineInfo:
    log_path = _start_dockerd()
    try:
        cli = _wait_private(deadline_s)
    except RetryError as exc:
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise EngineError(
            f"dockerd did not answer on {PRIVATE_SOCKET} within {deadline_s:.0f}s; "
            f"log tail ({log_path}):\n{tail}"
        ) from exc
    version = str(cli.version().get("Version", "?"))
    cli.close()
    return EngineInfo(host=PRIVATE_SOCKET, version=version, started_by_us=True)
