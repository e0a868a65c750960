"""Command builders: resources → sbatch options, refusals at submit, the remote scripts."""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from intercede import LocalBatchConfig, Resources, SpecificationRejectedError, SubmissionSpec
from intercede._batch import slurm


def _config(**extra: object) -> LocalBatchConfig:
    return LocalBatchConfig.model_validate(
        {"kind": "batch", "transport": "local", "work_root": "/w", **extra}
    )


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (Resources(), ["--cpus-per-task=1", "--nodes=1"]),
        (Resources(cpus=8), ["--cpus-per-task=8", "--nodes=1"]),
        (Resources(memory_mb=2048), ["--cpus-per-task=1", "--nodes=1", "--mem=2048M"]),
        (Resources(wall_time_s=90), ["--cpus-per-task=1", "--nodes=1", "--time=0-00:01:30"]),
        (
            Resources(wall_time_s=2 * 86400 + 3723),
            ["--cpus-per-task=1", "--nodes=1", "--time=2-01:02:03"],
        ),
        (Resources(queue="gpu"), ["--cpus-per-task=1", "--nodes=1", "--partition=gpu"]),
        (Resources(gpus=2), ["--cpus-per-task=1", "--nodes=1", "--gpus=2"]),
        (Resources(nodes="2-4"), ["--cpus-per-task=1", "--nodes=2-4"]),
        (Resources(whole_node=True), ["--cpus-per-task=1", "--nodes=1", "--exclusive"]),
    ],
)
def test_resources_to_sbatch_options(resources: Resources, expected: list[str]) -> None:
    assert slurm.resource_options(resources, _config()) == expected


def test_config_queue_is_the_default_partition_and_spec_queue_wins() -> None:
    config = _config(queue="main", account="vo42")
    assert "--partition=main" in slurm.resource_options(Resources(), config)
    opts = slurm.resource_options(Resources(queue="second"), config)
    assert "--partition=second" in opts
    assert "--partition=main" not in opts
    assert "--account=vo42" in opts


def test_sbatch_options_tag_jobs_and_keep_submit_extra_last() -> None:
    spec = SubmissionSpec(executable="/bin/true", tag="lhcb")
    config = _config(job_name="pilots", submit_extra=("--qos=low", "--reservation=r 1"))
    opts = slurm.sbatch_options(spec, config, "/w/b", "b" * 32)
    assert opts[0] == "--parsable"
    assert "--job-name=pilots" in opts
    assert f"--comment=intercede:{'b' * 32} lhcb" in opts
    untagged = slurm.sbatch_options(SubmissionSpec(executable="/bin/true"), config, "/w/b", "c")
    assert "--comment=intercede:c" in untagged
    assert "--output=/w/b/logs/%A_%a.log" in opts
    assert opts[-2:] == ["--qos=low", "--reservation=r 1"]


def test_submit_script_quotes_options_and_chunks_remotely() -> None:
    script = slurm.submit_script(
        work_root="/w w",
        batch="a" * 32,
        copies=2500,
        options=["--parsable", "--comment=x y"],
        max_array_size=1000,
    )
    bound = _bound(script)
    assert bound == ["/w w", "a" * 32, "2500", "1000", "1001", "--parsable", "--comment=x y"]
    assert 'sbatch "$@" --array=' in script  # the options travel as arguments, never as text
    assert f'>> "$b/{slurm.CHUNKS}"' in script  # accepted chunks recorded as they happen


def _bound(script: str) -> list[str]:
    """The positional parameters a packaged script is given (its ``set --`` line)."""
    first = script.splitlines()[0]
    assert first.startswith("set -- ")
    return shlex.split(first)[2:]


def test_submit_script_asks_the_cluster_when_unconfigured() -> None:
    script = slurm.submit_script(
        work_root="/w", batch="a" * 32, copies=1, options=[], max_array_size=None
    )
    assert "scontrol show config" in script
    assert 'echo "@@max $max"' in script


def test_parse_submit_chunks_and_failure() -> None:
    reply = slurm.parse_submit(
        "@@max 1001\n@@chunk 0 1001 41\n@@chunk 1001 1001 42;cluster\n@@fail 2002\n"
        "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
    )
    assert reply.max_array_size == 1001
    assert reply.chunks == ((0, 1001, "41"), (1001, 1001, "42"))
    assert reply.failed_at == 2002
    assert "QOSMaxSubmitJobPerUserLimit" in reply.error
    assert reply.malformed == ()


@pytest.mark.parametrize(
    "line", ["@@chunk 0 x 41", "@@chunk 0 1", "@@chunk", "@@chunk 0 1 notanid", "@@fail x"]
)
def test_parse_submit_reports_malformed_markers_instead_of_raising(line: str) -> None:
    reply = slurm.parse_submit(f"@@chunk 0 2 40\n{line}\n")
    assert reply.chunks == ((0, 2, "40"),)
    assert reply.malformed == (line,)


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("sbatch: error: Slurm job queue full, sleeping and retrying", True),
        ("sbatch: error: QOSMaxSubmitJobPerUserLimit", True),
        ("sbatch: error: AssocMaxSubmitJobLimit", True),
        (
            "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
            "(job submit limit, user's size and/or time limits)",
            True,
        ),
        ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", True),
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv", True),
        ("sbatch: error: Unable to contact slurm controller (connect failure)", True),
        ("sbatch: error: invalid partition specified: nope", False),
        ("sbatch: error: Batch job submission failed: Requested node configuration", False),
    ],
)
def test_one_table_tells_transient_refusals_from_permanent_ones(
    message: str, transient: bool
) -> None:
    assert slurm.is_transient(message) is transient


def test_launcher_placeholders_are_substituted_in_one_pass() -> None:
    """A command that itself contains "{image}" must reach the job unchanged."""
    spec = SubmissionSpec(executable="/bin/echo", arguments=("{image}",), container_image="img")
    config = _config(container_launcher="run {image} -- {command}")
    script = slurm.batch_script(spec, config, "/w/b", "echo", has_inputs=False)
    assert "run img -- /w/b/bin/echo '{image}'" in script


def test_container_launcher_template_wraps_the_command() -> None:
    spec = SubmissionSpec(
        executable="/bin/true", arguments=("a b",), container_image="docker://x/y:1"
    )
    config = _config(container_launcher="apptainer exec {image} {command}")
    script = slurm.batch_script(spec, config, "/w/b", "true", has_inputs=False)
    assert "apptainer exec docker://x/y:1 /w/b/bin/true 'a b'" in script


def test_an_argument_built_around_validation_is_still_refused_naming_it() -> None:
    spec = SubmissionSpec.model_construct(
        **{**SubmissionSpec(executable="/bin/true").__dict__, "arguments": ("ok", "bad\x00")}
    )
    with pytest.raises(SpecificationRejectedError) as info:
        slurm.batch_script(spec, _config(), "/w/b", "true", has_inputs=False)
    assert info.value.field == "arguments[1]"


@pytest.mark.parametrize("argument", ["\udc80", "bad\x00"])
def test_an_argument_that_cannot_reach_a_job_is_refused_by_the_spec_itself(
    argument: str,
) -> None:
    with pytest.raises(ValidationError) as info:
        SubmissionSpec(executable="/bin/true", arguments=("ok", argument))
    assert info.value.errors()[0]["loc"] == ("arguments",)
    assert "without NUL bytes" in info.value.errors()[0]["msg"]


def test_status_and_cancel_scripts_do_not_grow_with_n() -> None:
    arrays = [str(i) for i in range(100, 110)]
    ids = [f"{a}_{t}" for a in arrays for t in range(100)]
    cancel = slurm.cancel_script("/w", "pilots")
    assert cancel == slurm.cancel_script("/w", "pilots")
    assert "100" not in cancel
    stdin = slurm.status_input([(i, "b") for i in ids], slurm.compress_ids(ids))
    assert b"C 100_[0-99]\n" in stdin  # ranges, not 1000 ids
    assert stdin.count(b"\nC ") == 10
    assert slurm.status_script("/w").count("sacct -n") == 1


def test_counts_script_filters_on_user_name_and_partition(tmp_path: Path) -> None:
    calls = _run_counts(tmp_path, slurm.counts_script("my pilots", "main"))
    squeue = next(line for line in calls if line.startswith("squeue "))
    assert "-n|my pilots|" in squeue
    assert "-p|main|" in squeue
    assert f"-u|{getpass.getuser()}|" in squeue
    assert any(line.startswith("scontrol show|partition|-o|main|") for line in calls)
    unfixed = _run_counts(tmp_path, slurm.counts_script("x", None))
    assert len(unfixed) == 1
    assert "-p|" not in unfixed[0]


def _run_counts(tmp_path: Path, script: str) -> list[str]:
    """Run a counts script with squeue and scontrol stand-ins that log their argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    to_log = f">> {shlex.quote(str(log))}"
    for name in ("squeue", "scontrol"):
        stand_in = bin_dir / name
        stand_in.write_text(
            f'#!/bin/sh\nprintf "{name} %s" "$1" {to_log}\n'
            f'shift; printf "|%s" "$@" "" {to_log}; echo {to_log}\n'
        )
        stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["sh", "-c", script], env=env, check=True, capture_output=True)
    return log.read_text().splitlines()


def test_preamble_runs_before_the_payload(tmp_path: Path) -> None:
    spec = SubmissionSpec(executable="/bin/true")
    script = slurm.batch_script(
        spec, _config(preamble="module load x\n"), "/w/b", "true", has_inputs=False
    )
    assert script.index("module load x") < script.index("/w/b/bin/true")
    assert script.index("base64 -d") < script.index("module load x")


def test_batch_script_is_valid_bash(tmp_path: Path) -> None:
    spec = SubmissionSpec(
        executable="/bin/true",
        arguments=("it's", "$(rm -rf /)", "a\nb"),
        environment={"A": "x'y"},
    )
    script = slurm.batch_script(spec, _config(preamble="true"), "/w/b", "t", has_inputs=True)
    path = tmp_path / "job.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert shlex.quote("$(rm -rf /)") in script
