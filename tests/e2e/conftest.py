"""Fixtures the backend-level e2e modules share (each module defines its own ``config``:
which queue of the harness's client config, in which work root, under which job name)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import intercede
from intercede import SSHBatchConfig
from intercede._batch.backend import BatchBackend
from tests.e2e.jobs import build, credentials_of


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncssh needs asyncio


@pytest.fixture
def credentials(slurm_cluster: Any) -> intercede.CredentialProvider:
    return credentials_of(slurm_cluster)


@pytest.fixture
async def backend(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider
) -> AsyncIterator[BatchBackend]:
    async with build(config, credentials) as opened:
        yield opened
