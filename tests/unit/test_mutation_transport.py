"""The transport layer under the scheduler logic: the local transport's exact results and
errors, stdout limits and sinks, stderr's bounded head, ``put_tar`` and the tar path list, the
task group's unwrapped first error, and ``run_into`` streaming a command's stdout to blocking
code. Everything runs real local processes (``sh``, ``cat``, ``tar``); nothing is mocked.
"""

from __future__ import annotations

import io
import math
import stat
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import anyio
import pytest

from intercede._batch import transport as tr
from intercede._batch.local import LocalTransport
from intercede._batch.pipe import run_into
from intercede.errors import (
    BackendClosedError,
    OperationTimeoutError,
    ResourceUnavailableError,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_command_answers_its_exit_code_stdout_and_stderr() -> None:
    local = LocalTransport(command_timeout_s=30)
    assert (local.kind, local.resource) == ("local", "localhost")
    result = await local.run(tr.shell("printf out; printf err >&2; exit 3"))
    assert result == tr.CommandResult(3, b"out", b"err")
    assert await local.run(["cat"], stdin=b"fed\0bytes") == tr.CommandResult(0, b"fed\0bytes", b"")
    assert await local.run(["cat"]) == tr.CommandResult(0, b"", b"")  # no stdin: end of file
    assert (local.round_trips, local.connections_opened) == (3, 0)


async def test_stdin_a_command_never_reads_is_not_an_error() -> None:
    local = LocalTransport(command_timeout_s=30)
    result = await local.run(["true"], stdin=b"x" * (4 << 20))
    assert result == tr.CommandResult(0, b"", b"")


async def test_a_command_over_its_time_is_stopped_naming_the_program() -> None:
    by_default = LocalTransport(command_timeout_s=0.2)
    with pytest.raises(OperationTimeoutError) as caught:
        await by_default.run(["sleep", "30"])
    assert str(caught.value) == "sleep did not finish within 0.2 s"
    patient = LocalTransport(command_timeout_s=0.01)
    with pytest.raises(OperationTimeoutError) as caught:
        await patient.run(["sleep", "30"], timeout=0.3)
    assert str(caught.value) == "sleep did not finish within 0.3 s"
    assert await patient.run(tr.shell("sleep 0.1; echo ok"), timeout=5) == (0, b"ok\n", b"")
    unbounded = LocalTransport(command_timeout_s=math.inf)
    assert await unbounded.run(["true"]) == tr.CommandResult(0, b"", b"")


async def test_a_program_that_cannot_start_and_a_closed_transport_are_typed_errors(
    tmp_path: Path,
) -> None:
    local = LocalTransport(command_timeout_s=30)
    with pytest.raises(ResourceUnavailableError) as caught:
        await local.run([str(tmp_path / "absent"), "x"])
    assert str(caught.value) == f"cannot run {tmp_path / 'absent'}: No such file or directory"
    await local.aclose()
    with pytest.raises(BackendClosedError) as closed:
        await local.run(["true"])
    assert str(closed.value) == "the local transport is closed"
    assert local.round_trips == 1  # the refused call never ran


async def test_the_stdout_limit_is_inclusive_and_stops_the_command() -> None:
    local = LocalTransport(command_timeout_s=30)
    exact = await local.run(tr.shell("head -c 100 /dev/zero"), stdout_limit=100)
    assert exact == tr.CommandResult(0, b"\0" * 100, b"")
    with pytest.raises(tr.OutputLimitError) as caught:
        await local.run(tr.shell("head -c 101 /dev/zero"), stdout_limit=100)
    assert caught.value.limit == 100
    assert str(caught.value) == "the command printed more than 100 bytes; stopped reading"
    assert isinstance(caught.value, ResourceUnavailableError)
    with pytest.raises(tr.OutputLimitError):  # endless output: stopped, not read forever
        await local.run(["cat", "/dev/zero"], stdout_limit=1 << 16, timeout=30)


async def test_a_sink_gets_stdout_as_it_comes_and_the_result_keeps_none_of_it() -> None:
    local = LocalTransport(command_timeout_s=30)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    result = await local.run(tr.shell("head -c 300000 /dev/zero; echo e >&2"), sink=sink)
    assert result == tr.CommandResult(0, b"", b"e\n")
    assert b"".join(chunks) == b"\0" * 300000
    with pytest.raises(tr.OutputLimitError):  # the limit still applies to a sink
        await local.run(tr.shell("head -c 300000 /dev/zero"), sink=sink, stdout_limit=1000)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_exchange_keeps_stderrs_head_and_reads_a_missing_exit_code_as_minus_one() -> None:
    limit = tr.STDERR_LIMIT
    fed: list[bool] = []

    async def feed() -> None:
        fed.append(True)

    async def wait() -> int | None:
        return None

    result = await tr.exchange(
        feed,
        _chunks(b"o1", b"o2"),
        _chunks(b"a" * (limit - 1), b"b", b"c"),
        wait,
        tr.StdoutCollector(None, None),
    )
    assert result == tr.CommandResult(-1, b"o1o2", b"a" * (limit - 1) + b"b")
    assert fed == [True]

    async def zero() -> int | None:
        return 0

    result = await tr.exchange(feed, _chunks(), _chunks(), zero, tr.StdoutCollector(0, None))
    assert result == tr.CommandResult(0, b"", b"")


async def test_put_tar_unpacks_privately_in_one_call_and_names_the_directory_on_failure(
    tmp_path: Path,
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("sub/file")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    local = LocalTransport(command_timeout_s=30)
    target = tmp_path / "new dir"
    await tr.put_tar(local, buffer.getvalue(), str(target), 30)
    assert (target / "sub" / "file").read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert local.round_trips == 1
    with pytest.raises(ResourceUnavailableError) as caught:
        await tr.put_tar(local, b"not a tar archive" * 64, str(tmp_path / "other"), 30)
    message = str(caught.value)
    assert message.startswith(f"unpacking into {tmp_path / 'other'} failed: ")
    assert "tar" in message.removeprefix(f"unpacking into {tmp_path / 'other'} failed: ")


def test_the_tar_path_list_is_nul_separated_raw_names() -> None:
    assert tr.tar_input([]) == b""
    assert tr.tar_input(["a b/c", "caf\udce9", "x\ny"]) == b"a b/c\0caf\xe9\0x\ny\0"
    assert tr.shell("echo hi") == ["sh", "-c", "echo hi"]
    assert tr.tar_command("/w")[:2] == ["sh", "-c"]
    assert tr.tar_command("/w")[2].startswith("set -- /w\n")


async def test_a_task_groups_first_failure_is_raised_unwrapped() -> None:
    async def fail(error: BaseException) -> None:
        raise error

    with pytest.raises(KeyError, match="first"):
        async with tr.task_group() as group:
            group.start_soon(fail, KeyError("first"))
    with pytest.raises(OSError, match="inner"):
        async with tr.task_group() as outer:
            outer.start_soon(_nested, OSError("inner"))
    async with tr.task_group() as fine:
        fine.start_soon(anyio.sleep, 0)


async def _nested(error: BaseException) -> None:
    async def fail() -> None:
        raise error

    async with anyio.create_task_group() as group:
        group.start_soon(fail)


# --- run_into: a command's stdout consumed by blocking code as it arrives -------------------


async def test_run_into_streams_everything_in_small_reads_then_answers_the_result() -> None:
    local = LocalTransport(command_timeout_s=30)
    seen = bytearray()

    def consume(stream: IO[bytes]) -> None:
        while chunk := stream.read(1000):  # smaller than the chunks that arrive
            seen.extend(chunk)

    script = "head -c 500000 /dev/urandom > /dev/null; i=0; while [ $i -lt 2000 ]; do "
    script += 'printf "%05d\\n" $i; i=$((i+1)); done; echo done >&2; exit 4'
    result = await run_into(local, tr.shell(script), consume, stdin=None, timeout=30)
    assert result == tr.CommandResult(4, b"", b"done\n")
    assert bytes(seen) == b"".join(b"%05d\n" % i for i in range(2000))


async def test_run_into_feeds_stdin_and_a_reader_that_stops_early_stops_the_command() -> None:
    local = LocalTransport(command_timeout_s=30)
    seen: list[bytes] = []

    def consume(stream: IO[bytes]) -> None:
        seen.append(stream.read(5))

    result = await run_into(local, ["cat", "/dev/zero"], consume, stdin=None, timeout=30)
    assert result is None
    assert seen == [b"\0" * 5]
    whole: list[bytes] = []
    answered = await run_into(
        local, ["cat"], lambda s: whole.append(s.read()), stdin=b"abc", timeout=30
    )
    assert answered == tr.CommandResult(0, b"", b"")
    assert whole == [b"abc"]


async def test_run_into_raises_the_commands_failure_after_the_reader_saw_the_end() -> None:
    local = LocalTransport(command_timeout_s=30)
    seen: list[bytes] = []

    def consume(stream: IO[bytes]) -> None:
        seen.append(stream.read())

    with pytest.raises(OperationTimeoutError, match=r"^sh did not finish within 0\.3 s$"):
        await run_into(local, tr.shell("printf part; sleep 30"), consume, stdin=None, timeout=0.3)
    assert seen == [b"part"]


def test_run_into_is_not_given_a_reader_that_claims_to_be_seekable() -> None:
    """The consumer gets a plain readable stream: tarfile's stream mode ("r|") needs no more."""

    async def main() -> list[bool]:
        flags: list[bool] = []

        def consume(stream: IO[bytes]) -> None:
            flags.extend([stream.readable(), stream.seekable()])
            stream.read()

        await run_into(
            LocalTransport(command_timeout_s=30), ["true"], consume, stdin=None, timeout=30
        )
        return flags

    assert anyio.run(main) == [True, False]


class _Recorded:
    """A transport that answers every command with ``reply`` and keeps what it was asked."""

    kind = "local"
    resource = "localhost"
    connections_opened = 0
    round_trips = 0

    def __init__(self, reply: tr.CommandResult) -> None:
        self.reply = reply
        self.calls: list[tuple[list[str], dict[str, object]]] = []

    async def run(self, argv: list[str], **options: object) -> tr.CommandResult:
        self.calls.append((argv, options))
        return self.reply

    async def aclose(self) -> None:
        return None


async def test_put_tar_passes_its_timeout_and_reports_undecodable_stderr() -> None:
    recorded = _Recorded(tr.CommandResult(2, b"", b"tar: bad \xff header\n"))
    with pytest.raises(ResourceUnavailableError) as caught:
        await tr.put_tar(recorded, b"archive", "/w/b", 12.5)  # type: ignore[arg-type]
    assert str(caught.value) == "unpacking into /w/b failed: tar: bad \ufffd header\n"
    [(argv, options)] = recorded.calls
    assert argv[:2] == ["sh", "-c"]
    assert argv[2].startswith("set -- /w/b\n")
    assert options == {"stdin": b"archive", "timeout": 12.5}


async def test_put_tar_uses_the_callers_timeout_not_the_transports(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    impatient = LocalTransport(command_timeout_s=1e-6)
    await tr.put_tar(impatient, buffer.getvalue(), str(tmp_path / "t"), 30)
    assert (tmp_path / "t" / "empty").read_bytes() == b""
