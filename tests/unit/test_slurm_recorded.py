"""Parse output recorded from real Slurm clusters (see data/slurm/README.md for how)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from intercede import JobStatus
from intercede._batch import slurm

DATA = Path(__file__).parent / "data" / "slurm"
VARIANTS = sorted(p.name for p in DATA.iterdir() if (p / "cases.json").is_file())


def _read(variant: str, name: str) -> str:
    return (DATA / variant / name).read_text()


def _cases(variant: str) -> dict[str, str]:
    data = json.loads(_read(variant, "cases.json"))
    assert isinstance(data, dict)
    return data


def test_both_debian_variants_are_recorded() -> None:
    assert {"bookworm", "trixie"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_status_of_every_recorded_state(variant: str) -> None:
    cases = _cases(variant)
    expected = {
        f"{cases['held']}_0": JobStatus.WAITING,
        f"{cases['held']}_99": JobStatus.WAITING,
        f"{cases['completed']}_0": JobStatus.DONE,
        f"{cases['completed']}_1": JobStatus.DONE,
        f"{cases['failed']}_0": JobStatus.FAILED,
        f"{cases['timeout']}_0": JobStatus.FAILED,
        f"{cases['running']}_0": JobStatus.RUNNING,
        f"{cases['running']}_1": JobStatus.RUNNING,
        f"{cases['cancel_running']}_0": JobStatus.ABORTED,
        f"{cases['cancel_pending']}_0": JobStatus.ABORTED,
        f"{cases['cancel_pending']}_2": JobStatus.ABORTED,
    }
    unknown = f"{cases['completed']}_7"  # never existed
    states = slurm.parse_status(_read(variant, "status.txt"), [*expected, unknown])
    assert {job: state.status for job, state in states.items()} == expected
    assert unknown not in states


@pytest.mark.parametrize("variant", VARIANTS)
def test_sacct_alone_answers_when_squeue_forgot(variant: str) -> None:
    """After MinJobAge squeue no longer knows finished jobs: sacct's lines must suffice,
    including ``CANCELLED by <uid>`` and collapsed pending arrays."""
    cases = _cases(variant)
    text = _read(variant, "status.txt")
    sacct_only = "@@sacct\n" + text.split("@@sacct\n", 1)[1]
    wanted = {
        f"{cases['held']}_42": JobStatus.WAITING,
        f"{cases['cancel_pending']}_1": JobStatus.ABORTED,
        f"{cases['cancel_running']}_0": JobStatus.ABORTED,
        f"{cases['timeout']}_0": JobStatus.FAILED,
        f"{cases['failed']}_0": JobStatus.FAILED,
    }
    states = slurm.parse_status(sacct_only, wanted)
    assert {job: s.status for job, s in states.items()} == wanted
    assert states[f"{cases['cancel_running']}_0"].raw.startswith("CANCELLED by ")


@pytest.mark.parametrize("variant", VARIANTS)
def test_collapsed_views(variant: str) -> None:
    held = _cases(variant)["held"]
    text = "@@sacct\n" + _read(variant, "sacct_collapsed.txt") + "@@end\n"
    states = slurm.parse_status(text, [f"{held}_{i}" for i in range(100)])
    assert len(states) == 100
    assert {s.status for s in states.values()} == {JobStatus.WAITING}
    squeue = _read(variant, "squeue_collapsed.txt").strip()
    assert slurm.expand_job_ids(squeue.split("|")[0])[-1] == f"{held}_99"


@pytest.mark.parametrize("variant", VARIANTS)
def test_cancel_reply_before_and_after(variant: str) -> None:
    cases = _cases(variant)
    before_text, _, after_text = _read(variant, "cancel.txt").partition("@@after\n")
    running = [f"{cases['running']}_0", f"{cases['running']}_1"]
    ids = [*running, f"{cases['completed']}_0", "999999_0"]
    before = slurm.parse_status(before_text, ids)
    after = slurm.parse_status(after_text, ids)
    assert {before[j].status for j in running} == {JobStatus.RUNNING}
    assert before[f"{cases['completed']}_0"].status is JobStatus.DONE
    assert "999999_0" not in before
    # squeue says COMPLETING (Running) while sacct already says CANCELLED: sacct wins.
    assert {after[j].status for j in running} == {JobStatus.ABORTED}


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_of_recorded_queue(variant: str) -> None:
    running, waiting = slurm.parse_counts(_read(variant, "counts.txt"))
    assert (running, waiting) == (2, 100)


@pytest.mark.parametrize("variant", VARIANTS)
def test_sbatch_parsable_reply(variant: str) -> None:
    reply = slurm.parse_submit(f"@@chunk 0 100 {_read(variant, 'sbatch_parsable.txt').strip()}")
    assert reply.chunks == ((0, 100, _cases(variant)["held"]),)


@pytest.mark.parametrize("variant", VARIANTS)
def test_max_array_size_query_reads_recorded_config(variant: str) -> None:
    """Run the submit script's own scontrol|sed pipeline over the recorded config."""
    script = slurm.submit_script(
        work_root="/w", batch="b" * 32, copies=1, options=[], max_array_size=None
    )
    query = next(line for line in script.splitlines() if line.startswith("max=$("))
    pipeline = (
        query.removeprefix("max=$(")
        .removesuffix(")")
        .replace(
            "scontrol show config 2>/dev/null", f"cat {DATA / variant / 'scontrol_show_config.txt'}"
        )
    )
    out = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1001"
