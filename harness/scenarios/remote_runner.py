"""RemoteRunner's ``execute()`` through the sync facade (DC-35).

The runner wraps a command in ``workloadExec.sh`` ending with ``md5sum * > md5Checksum.txt``,
ships every file of the working directory, asks for everything back (``outputs=["/"]``),
polls until final, fetches with ``f"{ref}:::{stamp}"`` into the working directory (payload
files from ``JobOutput.root``, streams as ``<stamp>.out``/``.err``, as the DIRAC-side adapter
places them), verifies each md5 line, deletes its bookkeeping files and maps the final
status to a result code. DIRAC maps Done→0, Failed→-1 and has no entry for Aborted (a
``KeyError``); here Aborted→-2 like DIRAC's "Killed".

Three payloads run side by side: one that succeeds, one that exits non-zero (Failed, -1) and
one killed while running (Aborted, -2).
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from intercede import sync
from intercede.models import (
    CopyVars,
    FileRef,
    JobHandle,
    JobOutput,
    JobStatus,
    OutputSpec,
    SubmissionSpec,
)
from intercede.waiting import FINAL_STATES

from ._context import ScenarioContext, missing
from ._digests import verify_md5_lines
from ._place import place_output
from ._refs import handle_of, stamped_ref
from ._result import Recorder, ScenarioResult, run_scenario
from ._result import describe_submission as _describe

__all__ = [
    "CHECKSUM_FILE",
    "DC_IDS",
    "EXECUTABLE",
    "RESULT_CODES",
    "RunnerResult",
    "result_code",
    "run",
    "workload_script",
]

DC_IDS = ("DC-35", "DC-10", "DC-16", "DC-18")
EXECUTABLE = "workloadExec.sh"
CHECKSUM_FILE = "md5Checksum.txt"
RESULT_CODES = {JobStatus.DONE: 0, JobStatus.FAILED: -1, JobStatus.ABORTED: -2}


def result_code(status: JobStatus) -> int:
    """The runner's code for a final status; a non-final one is a clear error, not a KeyError."""
    try:
        return RESULT_CODES[status]
    except KeyError:
        raise ValueError(
            f"job status {status.value} is not final; poll until Done, Failed or Aborted"
        ) from None


def workload_script(command: str) -> str:
    return f"#!/bin/bash\n{command}\nmd5sum * > {CHECKSUM_FILE}\n"


@dataclass
class RunnerResult:
    code: int | None
    stdout: str = ""
    stderr: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class _Task:
    name: str
    cwd: Path
    stamp: str
    handle: JobHandle | None = None


def _prepare(local: Path, name: str, command: str, inputs: dict[str, str]) -> _Task:
    cwd = local / name
    cwd.mkdir(parents=True)
    for file_name, text in inputs.items():
        (cwd / file_name).write_text(text)
    executable = cwd / EXECUTABLE
    executable.write_text(workload_script(command))
    executable.chmod(0o755)
    return _Task(name, cwd, uuid.uuid4().hex)


def _spec(task: _Task) -> SubmissionSpec:
    inputs = tuple(
        FileRef(name=p.name, source=str(p))
        for p in sorted(task.cwd.iterdir())
        if p.is_file() and p.name != EXECUTABLE
    )
    return SubmissionSpec(
        executable=str(task.cwd / EXECUTABLE),
        inputs=inputs,
        outputs=OutputSpec(include_unlisted=True),
    )


def _collect(task: _Task, output: JobOutput | object, status: JobStatus) -> RunnerResult:
    """Place outputs in the working directory, verify md5 lines, clean up, map the code."""
    result = RunnerResult(code=result_code(status))
    if not isinstance(output, JobOutput):
        result.problems.append(f"no output: {output}")
        return result
    # Where the adapter's getJobOutput(ref:::stamp, cwd) leaves them: payload files by their
    # paths relative to JobOutput.root, streams as <stamp>.out/.err (DC-35 deletes those).
    out_path, err_path = place_output(output, task.cwd, task.stamp)
    result.stdout = out_path.read_text()
    result.stderr = err_path.read_text()
    checksums = task.cwd / CHECKSUM_FILE
    if status is JobStatus.DONE:
        if checksums.is_file():
            result.problems += verify_md5_lines(checksums.read_text(), task.cwd)
        else:
            result.problems.append(f"{CHECKSUM_FILE} did not come back")
    # The runner's own cleanup: streams, checksum file and executable leave the directory.
    for path in (out_path, err_path, checksums, task.cwd / EXECUTABLE):
        path.unlink(missing_ok=True)
    return result


def run(ctx: ScenarioContext, *, clean_remote_job: bool = True) -> ScenarioResult:
    return run_scenario("RemoteRunner", DC_IDS, lambda rec: _body(ctx, rec, clean_remote_job))


def _body(ctx: ScenarioContext, rec: Recorder, clean_remote_job: bool) -> None:
    queue = ctx.queues[0]
    local = ctx.local_dir("remote-runner")
    tasks = {
        "ok": _prepare(
            local,
            "ok",
            "tr 'a-z' 'A-Z' < input.txt > upper.txt\necho runner-ok",
            {"input.txt": "remote runner input\n", "params.json": '{"n": 3}\n'},
        ),
        "failing": _prepare(
            local, "failing", "echo 'boom: payload failed' >&2\nexit 3", {"input.txt": "x\n"}
        ),
        "killed": _prepare(local, "killed", "sleep 600", {"input.txt": "y\n"}),
    }
    with ctx.facade(queue) as ce:
        for task in tasks.values():
            submission = ce.submit(
                _spec(task),
                [CopyVars(environment={"DIRAC_PILOT_STAMP": task.stamp})],
                timeout=120,
            )
            if not rec.check(
                f"submit-{task.name}",
                0 in submission.handles,
                f"{task.name}: {_describe(submission)}",
            ):
                return
            task.handle = submission.handles[0]
        handles = {name: t.handle for name, t in tasks.items() if t.handle is not None}

        # Kill the sleeper once it runs: DIRAC's RemoteRunner has no code for that outcome.
        if not isinstance(ce, sync.Killable):
            raise missing(ce, "Killable", "kill")
        sleeper = handles["killed"]
        seen, _ = ctx.poll(ce, [sleeper], {JobStatus.RUNNING, *FINAL_STATES})
        killed = ce.kill([sleeper], timeout=60).get(sleeper.id)
        rec.check(
            "kill-running",
            seen.get(sleeper.id) is JobStatus.RUNNING and killed is not None and killed.ok,
            f"{sleeper.id} was {seen.get(sleeper.id)} when killed: {killed}",
        )

        statuses, finished = ctx.poll(ce, list(handles.values()))
        rec.check(
            "final",
            finished,
            ", ".join(f"{n}: {statuses.get(h.id)}" for n, h in handles.items()),
        )
        if not finished:
            return
        if not isinstance(ce, sync.OutputRetriever):
            raise missing(ce, "OutputRetriever", "return output")
        results: dict[str, RunnerResult] = {}
        for name, task in tasks.items():
            assert task.handle is not None
            # getJobOutput(f"{ref}:::{stamp}", cwd): the CE strips the stamp (DC-10).
            target = handle_of(stamped_ref(str(task.handle), task.stamp))
            with tempfile.TemporaryDirectory(dir=local, prefix="fetch-") as scratch:
                output = ce.get_output([target], Path(scratch), timeout=120).get(target.id)
                results[name] = _collect(task, output, statuses[target.id])

        ok = results["ok"]
        upper = tasks["ok"].cwd / "upper.txt"
        rec.check(
            "done→0",
            ok.code == 0
            and not ok.problems
            and "runner-ok" in ok.stdout
            and upper.is_file()
            and upper.read_text() == "REMOTE RUNNER INPUT\n",
            f"code {ok.code}, md5 lines verified"
            if not ok.problems
            else f"code {ok.code}: {ok.problems}",
        )
        rec.check(
            "cleanup",
            not (tasks["ok"].cwd / CHECKSUM_FILE).exists()
            and not (tasks["ok"].cwd / EXECUTABLE).exists()
            and (tasks["ok"].cwd / "params.json").is_file(),
            f"bookkeeping files removed from {tasks['ok'].cwd.name}, outputs kept",
        )
        failing = results["failing"]
        rec.check(
            "failed→-1",
            failing.code == -1 and "boom: payload failed" in failing.stderr,
            f"code {failing.code}, stderr {failing.stderr.strip()!r}",
        )
        killed_result = results["killed"]
        rec.check(
            "aborted→-2",
            killed_result.code == -2,
            f"code {killed_result.code} (DIRAC raises KeyError here)",
        )

        if clean_remote_job:
            if not isinstance(ce, sync.Purgeable):
                raise missing(ce, "Purgeable", "purge (cleanJob)")
            outcomes = ce.purge(list(handles.values()), timeout=120)
            rec.check(
                "cleanRemoteJob",
                all(outcomes.get(h.id) is not None and outcomes[h.id].ok for h in handles.values()),
                ", ".join(f"{n}: {outcomes.get(h.id)}" for n, h in handles.items()),
            )
