"""The one Slurm state table: DIRAC's mapping (DC-14) kept, its gaps fixed."""

from __future__ import annotations

import pytest

from intercede import JobStatus
from intercede._batch.slurm import (
    SLURM_STATES,
    compress_ids,
    expand_job_ids,
    map_state,
    normalise_state,
)

# DC-14, verbatim: what DIRAC's SLURM plugin maps today. We must agree on all of it.
DIRAC_DC14 = {
    "PENDING": JobStatus.WAITING,
    "SUSPENDED": JobStatus.WAITING,
    "CONFIGURING": JobStatus.WAITING,
    "RUNNING": JobStatus.RUNNING,
    "COMPLETING": JobStatus.RUNNING,
    "CANCELLED": JobStatus.ABORTED,
    "PREEMPTED": JobStatus.ABORTED,
    "COMPLETED": JobStatus.DONE,
    "FAILED": JobStatus.FAILED,
    "TIMEOUT": JobStatus.FAILED,
    "NODE_FAIL": JobStatus.FAILED,
}


@pytest.mark.parametrize(("state", "status"), sorted(DIRAC_DC14.items()))
def test_dirac_mapping_is_kept(state: str, status: JobStatus) -> None:
    assert SLURM_STATES[state] is status


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("CANCELLED by 2000", JobStatus.ABORTED),  # DIRAC: Unknown (exact match)
        ("CANCELLED+", JobStatus.ABORTED),  # sacct's truncation mark
        ("OUT_OF_MEMORY", JobStatus.FAILED),
        ("BOOT_FAIL", JobStatus.ABORTED),
        ("DEADLINE", JobStatus.ABORTED),
        ("REQUEUED", JobStatus.WAITING),
        ("REQUEUE_HOLD", JobStatus.WAITING),
        ("running", JobStatus.RUNNING),
        ("  PENDING  ", JobStatus.WAITING),
        ("SOMETHING_NEW", JobStatus.UNKNOWN),
        ("", JobStatus.UNKNOWN),
    ],
)
def test_gaps_are_fixed(raw: str, status: JobStatus) -> None:
    assert map_state(raw) is status


def test_every_value_is_a_job_status_and_no_key_needs_normalising() -> None:
    for state, status in SLURM_STATES.items():
        assert isinstance(status, JobStatus)
        assert normalise_state(state) == state
    assert JobStatus.SUBMITTED not in SLURM_STATES.values()  # Slurm accepted = queued


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        SLURM_STATES["PENDING"] = JobStatus.RUNNING  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "ids"),
    [
        ("1234_5", ["1234_5"]),
        ("1234", ["1234"]),
        ("1234_[0-2]", ["1234_0", "1234_1", "1234_2"]),
        ("1234_[0-1,5,7-8%2]", ["1234_0", "1234_1", "1234_5", "1234_7", "1234_8"]),
        ("1234_[3]", ["1234_3"]),
        ("156_[1-7:2]", ["156_1", "156_3", "156_5", "156_7"]),
        ("156_[0,4-10:3%5]", ["156_0", "156_4", "156_7", "156_10"]),
    ],
)
def test_collapsed_arrays_expand(field: str, ids: list[str]) -> None:
    assert expand_job_ids(field) == ids


def test_collapsed_array_of_a_thousand() -> None:
    assert len(expand_job_ids("77_[0-999]")) == 1000


@pytest.mark.parametrize(
    ("ids", "compressed"),
    [
        (["7_0"], ["7_0"]),
        (["7_0", "7_1", "7_2", "7_5"], ["7_[0-2,5]"]),
        (["7_3", "7_1", "8_0", "7_2"], ["7_[1-3]", "8_0"]),
        ([f"9_{i}" for i in range(1000)], ["9_[0-999]"]),
        (["7_0", "7_2", "7_4"], ["7_[0,2,4]"]),
    ],
)
def test_compress_ids_groups_ranges_per_array(ids: list[str], compressed: list[str]) -> None:
    assert compress_ids(ids) == compressed


def test_compress_then_expand_is_identity() -> None:
    ids = [f"5_{i}" for i in (0, 1, 2, 9, 10, 40)] + ["6_3"]
    expanded = [job for group in compress_ids(ids) for job in expand_job_ids(group)]
    assert sorted(expanded) == sorted(ids)


def test_bare_array_id_stands_for_its_unsplit_tasks() -> None:
    """Seen on 22.05: a one-task array cancelled while pending is reported as ``106``."""
    from intercede._batch.slurm import parse_status

    text = "106|CANCELLED\n105_0|RUNNING\n@@sacct\n106|CANCELLED by 2000\n@@end\n"
    states = parse_status(text, ["106_0", "105_0", "107_0"])
    assert {k: v.status for k, v in states.items()} == {
        "106_0": JobStatus.ABORTED,
        "105_0": JobStatus.RUNNING,
    }
