"""What the backend-level e2e tests share: the harness's credentials, a backend built from a
queue config, a payload script, and a status poll until the jobs get where a test wants."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

import intercede
from intercede import JobHandle, JobStatus, SSHBatchConfig
from intercede._batch.backend import BatchBackend

Statuses = Mapping[str, JobStatus]


def credentials_of(cluster: Any) -> intercede.CredentialProvider:
    return intercede.load_config(cluster.client_config_path).credentials()


def build(config: SSHBatchConfig, credentials: intercede.CredentialProvider) -> BatchBackend:
    built = intercede.backend(config, credentials)
    assert isinstance(built, BatchBackend)
    return built


def script(tmp_path: Path, body: str, name: str | None = None) -> str:
    """An executable ``#!/bin/sh`` payload in ``tmp_path`` (a fresh name unless given)."""
    path = tmp_path / (name or f"payload-{time.monotonic_ns()}.sh")
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


async def wait(
    backend: BatchBackend,
    handles: Sequence[JobHandle],
    done: Callable[[Statuses], bool],
    timeout: float = 120,
    seen: list[Statuses] | None = None,
    poll_s: float = 0.5,
) -> Statuses:
    """Poll ``get_status`` until ``done``; an ``AssertionError`` with the last answer if not."""
    deadline = time.monotonic() + timeout
    while True:
        status = await backend.get_status(handles)
        if seen is not None:
            seen.append(status)
        if done(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs did not get there in {timeout}s: {status}")
        await anyio.sleep(poll_s)


def all_final(status: Statuses) -> bool:
    return all(s.is_final for s in status.values())
