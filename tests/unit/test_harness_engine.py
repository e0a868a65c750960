"""Engine discovery and bootstrap: which API the harness talks to, and starting at most one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness import engine


def test_explicit_docker_host_is_the_only_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/podman/podman.sock")
    assert engine.candidate_hosts() == ["unix:///run/user/1000/podman/podman.sock"]


def test_default_then_private_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine.candidate_hosts() == [engine.DEFAULT_SOCKET, engine.PRIVATE_SOCKET]


def test_client_error_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    assert engine.find_engine() is None
    with pytest.raises(engine.EngineError, match="python -m harness engine"):
        engine.client()


def test_ensure_engine_refuses_a_dead_explicit_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(engine.EngineError, match="does not answer"):
        engine.ensure_engine()


class FakeHost:
    """A machine with no engine until something installs or starts one."""

    def __init__(self, *, postinst_starts_engine: bool, start_delay: float = 0.0) -> None:
        self.postinst_starts_engine = postinst_starts_engine
        self.start_delay = start_delay
        self.engine: engine.EngineInfo | None = None
        self.installs = 0
        self.private_starts = 0
        self.dockerd_installed = False

    def find(self) -> engine.EngineInfo | None:
        return self.engine

    def which(self, name: str) -> str | None:
        return "/usr/bin/dockerd" if name == "dockerd" and self.dockerd_installed else None

    def install(self) -> None:
        self.installs += 1
        self.dockerd_installed = True
        if self.postinst_starts_engine:
            self.engine = engine.EngineInfo(engine.DEFAULT_SOCKET, "26.1", started_by_us=False)

    def start_private(self, deadline_s: float) -> engine.EngineInfo:
        self.private_starts += 1
        time.sleep(self.start_delay)  # long enough for a racing caller to look meanwhile
        self.engine = engine.EngineInfo(engine.PRIVATE_SOCKET, "20.10", started_by_us=True)
        return self.engine


@pytest.fixture
def root_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(engine, "_is_debian", lambda: True)
    monkeypatch.setattr(engine, "ENGINE_LOCK", tmp_path / "engine.lock")


def _install(monkeypatch: pytest.MonkeyPatch, host: FakeHost, *, systemd: bool) -> None:
    monkeypatch.setattr(engine, "find_engine", host.find)
    monkeypatch.setattr("shutil.which", host.which)
    monkeypatch.setattr(engine, "_install_docker", host.install)
    monkeypatch.setattr(engine, "_start_private", host.start_private)
    monkeypatch.setattr(engine, "_has_systemd", lambda: systemd)


@pytest.mark.usefixtures("root_debian")
def test_engine_started_by_the_package_is_used_not_a_second_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = FakeHost(postinst_starts_engine=True)
    _install(monkeypatch, host, systemd=True)
    info = engine.ensure_engine()
    assert host.installs == 1
    assert host.private_starts == 0
    assert info.host == engine.DEFAULT_SOCKET
    assert info.started_by_us is False


@pytest.mark.usefixtures("root_debian")
def test_without_systemd_the_private_engine_starts_after_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = FakeHost(postinst_starts_engine=False)
    _install(monkeypatch, host, systemd=False)
    info = engine.ensure_engine()
    assert (host.installs, host.private_starts) == (1, 1)
    assert info.host == engine.PRIVATE_SOCKET


@pytest.mark.usefixtures("root_debian")
def test_systemd_host_whose_package_starts_nothing_still_gets_an_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = FakeHost(postinst_starts_engine=False)
    _install(monkeypatch, host, systemd=True)
    monkeypatch.setattr(engine, "SYSTEM_ENGINE_GRACE_S", 0.2)
    assert engine.ensure_engine().host == engine.PRIVATE_SOCKET
    assert host.private_starts == 1


@pytest.mark.usefixtures("root_debian")
def test_concurrent_callers_start_one_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost(postinst_starts_engine=False, start_delay=0.3)
    host.dockerd_installed = True
    _install(monkeypatch, host, systemd=False)
    results: list[engine.EngineInfo] = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.ensure_engine())) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert host.private_starts == 1
    assert host.installs == 0
    assert [r.host for r in results] == [engine.PRIVATE_SOCKET] * 3


def test_non_root_never_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "find_engine", lambda: None)
    monkeypatch.setattr("os.geteuid", lambda: 1000)

    def forbidden() -> None:
        raise AssertionError("must not install")

    monkeypatch.setattr(engine, "_install_docker", forbidden)
    with pytest.raises(engine.EngineError, match="no container engine answers"):
        engine.ensure_engine()
