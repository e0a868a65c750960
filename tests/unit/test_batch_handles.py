"""Handles read back from a store must address exactly one job, or none: every malformed id or
routing is refused before anything is sent to the resource."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercede import JobHandle, JobStatus, SSHBatchConfig
from intercede._batch.backend import BatchBackend
from intercede._batch.layout import JobLocation, locate
from intercede._batch.slurm import SlurmScheduler
from intercede._batch.transport import CommandResult

pytestmark = pytest.mark.anyio

RESOURCE = "submit@ce.example.org:22"
BATCH = "ab" * 16


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _NoCalls:
    """A transport that fails the test if anything reaches it."""

    kind = "ssh"
    resource = RESOURCE
    connections_opened = 0
    round_trips = 0

    async def run(self, argv: list[str], **kw: object) -> CommandResult:
        raise AssertionError(f"a remote command was sent: {argv[-1][:80]!r}")

    async def aclose(self) -> None:
        return None


class _Provider:
    async def get(self, requirements: object) -> object:
        from intercede import CredentialSet, SSHPrivateKey

        return CredentialSet([SSHPrivateKey(pem="k")])  # type: ignore[arg-type]

    async def __aenter__(self) -> _Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _handle(job_id: str, routing: str = f"{BATCH}/0") -> JobHandle:
    return JobHandle(backend="slurm+ssh", resource=RESOURCE, id=job_id, routing=routing)


@pytest.mark.parametrize(
    ("job_id", "routing"),
    [
        ("42_0\n", f"{BATCH}/0"),
        ("42_0x", f"{BATCH}/0"),
        ("42_0;rm -rf ~", f"{BATCH}/0"),
        ("\n42_0", f"{BATCH}/0"),
        ("４２_0", f"{BATCH}/0"),  # fullwidth digits are digits to Python's \d, not to Slurm
        ("42_0", f"{BATCH}/07"),
        ("42_0", f"{BATCH}/0\n"),
        ("42_0", f"{BATCH}\n/0"),
        ("42_0", f"{BATCH.upper()}/0"),
        ("42_0", f"{BATCH}/-1"),
    ],
)
def test_malformed_ids_and_routings_are_refused(job_id: str, routing: str) -> None:
    where = locate(_handle(job_id, routing), backend="slurm+ssh", resource=RESOURCE)
    assert isinstance(where, str)
    assert "malformed" in where


def test_a_well_formed_handle_resolves_to_its_paths() -> None:
    where = locate(_handle("42_7", f"{BATCH}/10"), backend="slurm+ssh", resource=RESOURCE)
    assert where == JobLocation(job_id="42_7", array_id="42", batch=BATCH, index=10)
    assert where.log == f"{BATCH}/logs/42_7.log"
    assert where.work_dir == f"{BATCH}/10/work"


def test_a_trailing_newline_survives_the_compact_form_and_is_still_refused() -> None:
    handle = _handle("42_0\n")
    parsed = JobHandle.parse(str(handle))
    assert parsed.id == "42_0\n"
    assert isinstance(locate(parsed, backend="slurm+ssh", resource=RESOURCE), str)


def test_a_routing_with_a_percent_escape_round_trips_unchanged() -> None:
    handle = _handle("42_0", "x%41y/0")
    assert JobHandle.parse(str(handle)) == handle
    assert JobHandle.parse(str(handle)).routing == "x%41y/0"


async def test_malformed_handles_cost_no_remote_call(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = SSHBatchConfig(
        transport="ssh", host="ce.example.org", user="submit", known_hosts=known, work_root="/w"
    )
    backend = BatchBackend(_NoCalls(), SlurmScheduler(), config, _Provider())  # type: ignore[arg-type]
    bad = [_handle("42_0\n"), _handle("42_0x"), _handle("42_1", f"{BATCH}/07")]
    assert await backend.get_status(bad) == dict.fromkeys((h.id for h in bad), JobStatus.UNKNOWN)
    for outcomes in (
        await backend.kill(bad),
        await backend.purge(bad),
        await backend.get_output(bad, tmp_path / "out"),
        await backend.get_diagnostics(bad),
    ):
        assert {job_id: o.ok for job_id, o in outcomes.items()} == dict.fromkeys(
            (h.id for h in bad), False
        )
