"""``_batch.factory.build``: the scheduler and transport the config names, with its settings.

Construction does no I/O, so everything here is checked without a resource; the one command
run is a local ``sleep`` to show the local transport got the configured timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intercede import OperationTimeoutError, SSHBatchConfig
from intercede._batch.factory import build
from intercede._batch.host import HostScheduler
from intercede._batch.local import LocalTransport
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.ssh import SSHTransport
from intercede.config import LocalBatchConfig
from intercede.credentials import StaticCredentials

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_slurm_over_local_gets_the_array_limit() -> None:
    config = LocalBatchConfig(transport="local", work_root="/w", max_array_size=7)
    provider = StaticCredentials()
    backend = build(config, provider)
    assert backend._provider is provider
    assert backend.name == "slurm+local"
    assert isinstance(backend.transport, LocalTransport)
    assert isinstance(backend._scheduler, SlurmScheduler)
    assert backend._scheduler.max_array_size == 7
    unlimited = build(LocalBatchConfig(transport="local", work_root="/w"), StaticCredentials())
    assert isinstance(unlimited._scheduler, SlurmScheduler)
    assert unlimited._scheduler.max_array_size is None


def test_the_host_scheduler_is_built_when_named() -> None:
    config = LocalBatchConfig(transport="local", work_root="/w", scheduler="host")
    backend = build(config, StaticCredentials())
    assert backend.name == "host+local"
    assert isinstance(backend._scheduler, HostScheduler)


async def test_the_local_transport_gets_the_configured_command_timeout() -> None:
    config = LocalBatchConfig(transport="local", work_root="/w", command_timeout_s=0.2)
    backend = build(config, StaticCredentials())
    with pytest.raises(OperationTimeoutError, match=r"^sleep did not finish within 0\.2 s$"):
        await backend.transport.run(["sleep", "30"])


def test_ssh_builds_an_ssh_transport_without_connecting(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = SSHBatchConfig(
        transport="ssh", host="login.invalid", user="u", work_root="/w", known_hosts=known
    )
    backend = build(config, StaticCredentials())
    assert backend.name == "slurm+ssh"
    assert isinstance(backend.transport, SSHTransport)
    assert backend.transport.connections_opened == 0
