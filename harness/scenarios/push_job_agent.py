"""PushJobAgent's remote-execution round trip through the sync facade (DC-34, DC-10).

The agent ships a whole job directory plus the wrapper's code and configuration as inputs,
asks for everything back (``outputs=["/"]``, here ``OutputSpec(include_unlisted=True)``) and
stores the task's ``TaskID`` (the bare reference) and ``Stamp``. It monitors by the bare
reference, fetches with ``f"{ref}:::{stamp}"`` (the CE strips the stamp again), and finds the
files in the job directory where the DIRAC-side adapter places them (from ``JobOutput.root``,
streams as ``<stamp>.out``/``.err``). There it checks ``checksums.json`` (sha256 per file; a
mismatch means reschedule), reads ``payloadResult.json`` (an ``S_OK``/``S_ERROR`` dict) and
cleans the remote task (``cleanJob``, here ``purge``). It also checks what interCEde adds:
fetching twice gives the same files, stdout never collides with a payload file called
``stdout``, and a fetch after the purge reports the loss for that job instead of dropping it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from intercede import sync
from intercede.models import (
    CopyVars,
    FileRef,
    JobHandle,
    JobOutput,
    JobStatus,
    OpOutcome,
    OutputSpec,
    SubmissionSpec,
)

from ._context import ScenarioContext, missing
from ._digests import tree_digests, verify_sha256_manifest
from ._place import place_output
from ._refs import handle_of, stamp_of, stamped_ref
from ._result import Recorder, ScenarioResult, run_scenario
from ._result import describe_submission as _describe

__all__ = ["DC_IDS", "WRAPPER_SCRIPT", "build_inputs", "check_payload_result", "run"]

DC_IDS = ("DC-34", "DC-10", "DC-16", "DC-18")

# The job wrapper runner: checks its inputs arrived, runs a "payload" that leaves nested files,
# then writes checksums.json over what it produced and an S_OK-shaped payloadResult.json.
WRAPPER_SCRIPT = """\
#!/bin/sh
for f in job.json input.txt jobWrapperConfig.json; do
  [ -f "$f" ] || { echo "input $f missing" >&2; exit 4; }
done
mkdir -p results/nested/deeper
tr 'a-z' 'A-Z' < input.txt > results/upper.txt
echo "deep payload output" > results/nested/deeper/deep.txt
head -c 70000 /dev/urandom > results/nested/blob.bin
echo "a payload file that happens to be called stdout" > stdout
echo "payload stdout line"
echo "payload stderr line" >&2
{
  printf '{'
  sep=''
  for f in $(find results stdout -type f | sort); do
    printf '%s"%s": "%s"' "$sep" "$f" "$(sha256sum "$f" | cut -d' ' -f1)"
    sep=', '
  done
  printf '}\\n'
} > checksums.json
printf '{"OK": true, "Value": {"exitCode": 0, "stamp": "%s"}}\\n' "$DIRAC_PILOT_STAMP" \\
  > payloadResult.json
"""


def build_inputs(job_dir: Path, extra: list[Path]) -> tuple[FileRef, ...]:
    """Every file of the job directory plus the wrapper's own files, as DIRAC does."""
    files = sorted(p for p in job_dir.iterdir() if p.is_file()) + extra
    return tuple(FileRef(name=p.name, source=str(p)) for p in files)


def check_payload_result(path: Path, stamp: str) -> str | None:
    """Why ``payloadResult.json`` is not the expected ``S_OK``, or ``None`` when it is."""
    if not path.is_file():
        return "payloadResult.json missing"
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return f"payloadResult.json is not JSON: {exc}"
    if not isinstance(result, dict) or result.get("OK") is not True:
        return f"payload did not return S_OK: {result!r}"
    value = result.get("Value")
    if not isinstance(value, dict) or value.get("stamp") != stamp:
        return f"payload result carries the wrong stamp: {value!r}"
    return None


def run(ctx: ScenarioContext) -> ScenarioResult:
    return run_scenario("PushJobAgent", DC_IDS, lambda rec: _body(ctx, rec))


def _body(ctx: ScenarioContext, rec: Recorder) -> None:
    queue = ctx.queues[0]
    local = ctx.local_dir("push-job-agent")
    job_dir = local / "1234"  # the DIRAC job id's directory (jobIDPath)
    job_dir.mkdir()
    (job_dir / "job.json").write_text(json.dumps({"JobID": 1234, "Executable": "payload"}))
    (job_dir / "input.txt").write_text("hello from the job directory\n")
    wrapper_dir = local / "wrapper"
    wrapper_dir.mkdir()
    runner = wrapper_dir / "jobWrapperRunner.sh"
    runner.write_text(WRAPPER_SCRIPT)
    runner.chmod(0o755)
    wrapper_config = wrapper_dir / "jobWrapperConfig.json"
    wrapper_config.write_text(json.dumps({"LogLevel": "DEBUG"}))
    inputs = build_inputs(job_dir, [wrapper_config])

    with ctx.facade(queue) as ce:
        stamp = uuid.uuid4().hex
        submission = ce.submit(
            SubmissionSpec(
                executable=str(runner), inputs=inputs, outputs=OutputSpec(include_unlisted=True)
            ),
            [CopyVars(environment={"DIRAC_PILOT_STAMP": stamp})],
            timeout=120,
        )
        if not rec.check("submit", 0 in submission.handles, _describe(submission)):
            return
        # What the agent stores in its task record: TaskID (the bare ref) and Stamp, strings
        # only (a JSON round trip stands in for the database).
        task = json.loads(json.dumps({"TaskID": str(submission.handles[0]), "Stamp": stamp}))

        # Monitoring by the bare stored ref (DC-34: getJobStatus(bare refs)).
        handle = JobHandle.parse(task["TaskID"])
        statuses, _ = ctx.poll(ce, [handle])
        status = statuses.get(handle.id, JobStatus.UNKNOWN)
        rec.check("status", status is JobStatus.DONE, f"{handle.id} is {status.value}")

        # Output retrieval by f"{ref}:::{stamp}", stripped back by the CE (DC-10, DC-16).
        output_ref = stamped_ref(task["TaskID"], task["Stamp"])
        target = handle_of(output_ref)
        rec.check(
            "stamped-ref",
            target == submission.handles[0] and stamp_of(output_ref) == stamp,
            f"{output_ref} strips back to {target.id} with stamp {stamp_of(output_ref)}",
        )

        if not isinstance(ce, sync.OutputRetriever):
            raise missing(ce, "OutputRetriever", "return output")
        first = ce.get_output([target], local / "fetch-1", timeout=120).get(target.id)
        if not rec.check(
            "fetch", isinstance(first, JobOutput), f"get_output({output_ref}): {first}"
        ):
            return
        assert isinstance(first, JobOutput)
        fetched = tree_digests(first.root)
        # Into jobIDPath as the adapter's getJobOutput(ref:::stamp, jobIDPath) leaves it:
        # payload files by their relative paths, streams as <stamp>.out/.err beside them.
        out_path, _err_path = place_output(first, job_dir, task["Stamp"])
        manifest_path = job_dir / "checksums.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        problems = verify_sha256_manifest(manifest, job_dir)
        nested = job_dir / "results" / "nested" / "deeper" / "deep.txt"
        if not nested.is_file():
            problems.append("results/nested/deeper/deep.txt did not come back")
        rec.check(
            "checksums",
            not problems,
            "; ".join(problems)
            or f"{len(manifest)} files in {job_dir.name}/ match checksums.json (sha256)",
        )
        why = check_payload_result(job_dir / "payloadResult.json", task["Stamp"])
        rec.check("payloadResult", why is None, why or "S_OK with the job's stamp")

        stdout_text = out_path.read_text()
        payload_stdout = job_dir / "stdout"
        rec.check(
            "streams-separate",
            "payload stdout line" in stdout_text
            and "happens to be called stdout" not in stdout_text
            and payload_stdout.is_file()
            and "happens to be called stdout" in payload_stdout.read_text(),
            f"stdout stream {out_path.name}, payload file {payload_stdout.name}",
        )

        second = ce.get_output([target], local / "fetch-2", timeout=120).get(target.id)
        same = isinstance(second, JobOutput) and fetched == tree_digests(second.root)
        rec.check(
            "fetch-twice",
            same,
            f"second fetch identical ({len(fetched)} files)"
            if same
            else f"second fetch differs or failed: {second}",
        )

        if not isinstance(ce, sync.Purgeable):
            raise missing(ce, "Purgeable", "purge (cleanJob)")
        purged = ce.purge([target], timeout=120).get(target.id)
        rec.check("cleanJob", purged is not None and purged.ok, f"purge: {purged}")

        after = ce.get_output([target], local / "after-purge", timeout=120)
        lost = after.get(target.id)
        rec.check(
            "fetch-after-purge",
            isinstance(lost, OpOutcome) and not lost.ok and bool(lost.reason),
            f"{target.id}: {lost}",
        )
