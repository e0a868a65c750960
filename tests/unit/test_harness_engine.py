"""Engine discovery: which API the harness talks to, decided without starting anything."""

from __future__ import annotations

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
