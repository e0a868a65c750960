"""Parse output recorded from real Slurm clusters (see data/slurm/README.md for how).

The replies are the stdout of the backend's own remote scripts, fed the stdin the backend
sends, so these tests see exactly what ``get_status``/``kill``/``counts`` see in production.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from intercede import JobStatus, LocalBatchConfig
from intercede._batch import slurm
from intercede._batch.layout import JobLocation
from intercede._batch.scheduler import Reply
from intercede._batch.slurm import status_of as _status_of

DATA = Path(__file__).parent / "data" / "slurm"
VARIANTS = sorted(p.name for p in DATA.iterdir() if (p / "cases.json").is_file())


def _read(variant: str, name: str) -> str:
    return (DATA / variant / name).read_text()


def _cases(variant: str) -> dict[str, str]:
    data = json.loads(_read(variant, "cases.json"))
    assert isinstance(data, dict)
    return data


def _wanted(variant: str, name: str) -> list[str]:
    """The job ids the recorded script was asked about, from the stdin it was given."""
    return [line.split()[1] for line in _read(variant, name).splitlines() if line[:2] == "J "]


def _expected(cases: dict[str, str]) -> dict[str, JobStatus]:
    return {
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
        f"{cases['other_name']}_0": JobStatus.RUNNING,
        # neither squeue nor sacct knows it: its log's exit line decides
        cases["forgotten"]: JobStatus.FAILED,
        cases["never"]: JobStatus.UNKNOWN,
    }


def test_both_debian_variants_are_recorded() -> None:
    assert {"bookworm", "trixie"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_recorded_with_the_current_scripts(variant: str) -> None:
    """Stale recordings (before ``@@rc``/``@@exits``/``@@ours`` and the 4-field squeue rows)
    would make every other test here prove nothing about the scripts in use."""
    status = _read(variant, "status.txt")
    assert "@@rc squeue " in status
    assert "@@rc sacct " in status
    assert "@@exits" in status
    rows = status.split("@@squeue\n", 1)[1].split("@@rc squeue", 1)[0].splitlines()
    assert rows
    assert all(len(row.split("|")) == 4 for row in rows)
    assert "@@ours " in _read(variant, "cancel.txt")
    assert "@@rc scancel 0" in _read(variant, "cancel.txt")


@pytest.mark.parametrize("variant", VARIANTS)
def test_status_of_every_recorded_state(variant: str) -> None:
    cases = _cases(variant)
    wanted = _wanted(variant, "status_input.txt")
    reply = slurm.parse_status_reply(_read(variant, "status.txt"), wanted)
    assert reply.complete
    assert reply.squeue_ok is True
    assert reply.sacct_ok is True
    expected = _expected(cases)
    assert {job: _status_of(reply, job) for job in expected} == expected
    # every task asked about has an answer; only the never-existing id is Unknown
    assert {job for job in wanted if _status_of(reply, job) is JobStatus.UNKNOWN} == {
        cases["never"]
    }
    assert cases["forgotten"] not in reply.states
    assert reply.exits == {cases["forgotten"]: 3}


@pytest.mark.parametrize("variant", VARIANTS)
def test_outage_is_told_from_forgotten_jobs(variant: str) -> None:
    """With the controller unreachable both commands fail: the ``@@rc`` lines say so, which
    is what makes the backend raise instead of calling the whole queue Unknown."""
    cases = _cases(variant)
    wanted = _wanted(variant, "status_input.txt")
    reply = slurm.parse_status_reply(_read(variant, "status_outage.txt"), wanted)
    assert reply.complete
    assert reply.squeue_ok is False
    assert reply.sacct_ok is False
    assert reply.states == {}
    live = [job for job in wanted if job not in (cases["forgotten"], cases["never"])]
    assert {_status_of(reply, job) for job in live} == {JobStatus.UNKNOWN}


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
def test_cancel_only_touches_our_jobs(variant: str) -> None:
    """The ownership filter: only arrays squeue shows with our user and job name are
    cancelled; the running job under another name is left running. A scancel that succeeded
    is not followed by a second status read; the status read right after it shows the
    cancel landed."""
    cases = _cases(variant)
    text = _read(variant, "cancel.txt")
    before_text, marker, rest = text.partition("@@after\n")
    assert marker
    assert "@@rc scancel 0\n" in before_text
    assert rest == "@@end\n"  # scancel succeeded: the status was read once
    ids = _wanted(variant, "cancel_input.txt")
    before = slurm.parse_status_reply(before_text + "@@end\n", ids)
    after = slurm.parse_status_reply(_read(variant, "after_cancel.txt"), ids)
    assert before.squeue_ok is True
    assert after.squeue_ok is True
    assert after.complete
    running = [f"{cases['running']}_0", f"{cases['running']}_1"]
    other = f"{cases['other_name']}_0"
    completed = f"{cases['completed']}_0"
    assert cases["running"] in before.ours
    assert cases["other_name"] not in before.ours
    assert {before.states[j].status for j in [*running, other]} == {JobStatus.RUNNING}
    assert before.states[completed].status is JobStatus.DONE
    assert cases["never"] not in before.states
    # squeue may still say COMPLETING (Running) while sacct says CANCELLED: sacct wins
    assert {after.states[j].status for j in running} == {JobStatus.ABORTED}
    assert after.states[other].status is JobStatus.RUNNING
    jobs = [
        JobLocation(job_id, job_id.partition("_")[0], cases["batch"], index)
        for index, job_id in enumerate(ids)
    ]
    config = LocalBatchConfig(transport="local", work_root="/w", job_name="capture")
    outcomes = slurm.SlurmScheduler().kill_result(Reply(0, text, ""), config, jobs)
    assert {j for j, o in outcomes.items() if o.ok} == set(running)
    assert "already finished (Done)" in (outcomes[completed].reason or "")
    assert "unknown to Slurm" in (outcomes[cases["never"]].reason or "")
    assert "another user or job name" in (outcomes[other].reason or "")


@pytest.mark.parametrize("variant", VARIANTS)
def test_counts_of_recorded_queue(variant: str) -> None:
    """Only jobs named like ours count: the 100 held, the 2 running; not the other name's."""
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
