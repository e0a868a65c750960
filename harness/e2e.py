"""``python -m harness e2e`` (``just e2e``): the project's main end-to-end run.

Brings the Slurm cluster up (or reuses a running one), runs the debug-CE spike against every
partition and every DIRAC consumer scenario through the sync facade, prints a one-screen
summary and tears the cluster down again, unless ``--keep``/``KEEP=1`` or the cluster was
already running before (someone else's stack is never taken down). Start and teardown hold the
stack's lock, and a start that fails partway is torn down as well. A run that fails saves every
container's log to its report folder (``reports/e2e-<variant>-<time>/logs/``) before any
teardown. Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from harness._lock import stack_lock, stack_owner_path
from harness.config import REPO_ROOT
from harness.scenarios import SCENARIOS, Check, ClusterLike, ScenarioContext, ScenarioResult

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.cluster import Cluster

__all__ = [
    "E2EReport",
    "configure",
    "debug_ce_result",
    "main",
    "render_summary",
    "run_e2e",
    "write_report",
]

SPIKE = "debug-ce"


@dataclass
class E2EReport:
    variant: str
    stack: str
    results: list[ScenarioResult] = field(default_factory=list)
    cluster_s: float = 0.0
    """Time to bring the cluster up (or find it running)."""
    reused: bool = False
    torn_down: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "stack": self.stack,
            "ok": self.ok,
            "reused": self.reused,
            "torn_down": self.torn_down,
            "cluster_s": round(self.cluster_s, 3),
            "duration_s": round(self.duration_s, 3),
            "scenarios": [r.to_dict() for r in self.results],
        }


def debug_ce_result(document: Mapping[str, Any], duration_s: float) -> ScenarioResult:
    """The spike's ``--json`` report (its public, versioned format) as one scenario: a check per
    queue and CE check. Skips fail here: the Slurm backend has every capability, so a skipped
    step means something went missing."""
    result = ScenarioResult(name=SPIKE, dc_ids=("DC-37",), duration_s=duration_s)
    result.error = document.get("error")
    for queue in document.get("queues", ()):
        if queue.get("error") is not None:
            result.checks.append(Check(str(queue["queue"]), False, str(queue["error"])))
        for name, check in queue.get("checks", {}).items():
            ok = check.get("state") == "passed"
            result.checks.append(Check(f"{queue['queue']}:{name}", ok, str(check.get("message"))))
    return result


def _run_spike(cluster: ClusterLike, timeout_s: float) -> ScenarioResult:
    """``intercede-debug-ce --json`` on every queue of the stack's config, as a user runs it."""
    started = time.monotonic()
    command = Path(sys.executable).with_name("intercede-debug-ce")
    argv = [str(command), "--json", "--timeout", str(timeout_s), str(cluster.client_config_path)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s * 2 + 60, check=False
        )
        document = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return ScenarioResult(
            name=SPIKE,
            dc_ids=("DC-37",),
            duration_s=time.monotonic() - started,
            error=f"{' '.join(argv)}: {type(exc).__name__}: {exc}",
        )
    result = debug_ce_result(document, time.monotonic() - started)
    if done.returncode != 0 and result.ok:
        result.error = f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"
    return result


def render_summary(report: E2EReport) -> str:
    """One screen: a row per scenario, then every failed check with its message."""
    rows = [(SPIKE if r.name == SPIKE else r.name, r) for r in report.results]
    width = max([len(name) for name, _ in rows] + [len("scenario")])
    lines = [
        f"interCEde e2e on stack {report.stack} (variant {report.variant}); cluster "
        f"{'reused' if report.reused else 'started'} in {report.cluster_s:.1f} s",
        "",
        f"{'scenario':<{width}}  {'checks':>7}  {'time':>7}  result  DC ids",
    ]
    for name, r in rows:
        verdict = "ok" if r.ok else "FAILED"
        lines.append(
            f"{name:<{width}}  {len(r.passed):>3}/{len(r.checks):<3}  {r.duration_s:>6.1f}s  "
            f"{verdict:<6}  {','.join(r.dc_ids)}"
        )
    lines += ["", "DIRAC code each scenario ran:"]
    for r in report.results:
        if r.code_paths:
            lines.append(f"  {r.name}: {', '.join(p.removeprefix('DIRAC.') for p in r.code_paths)}")
    for r in report.results:
        if r.error is not None:
            lines.append(f"  {r.name}: error: {r.error}")
        lines += [f"  {r.name}: {c.name}: {c.message}" for c in r.failed]
    failed = sum(1 for r in report.results if not r.ok)
    lines.append("")
    lines.append(
        f"{len(report.results)} scenarios, {failed} failed, {report.duration_s:.1f} s in all"
        + ("; cluster torn down" if report.torn_down else "; cluster left running")
    )
    return "\n".join(lines) + "\n"


def _save_logs_if_failed(
    cluster: Cluster, failed: bool, say: Callable[[str], None], directory: Path | None = None
) -> None:
    """A failed run's container logs go to the report folder (``directory``, by default
    ``reports/logs/<stack>/``), which the workflows upload, while the containers still exist."""
    if not failed:
        return
    try:
        if all(row.state == "missing" for row in cluster.status()):
            return  # a start that failed saved them itself, then removed the containers
        say(f"e2e: run failed; container logs saved to {cluster.dump_logs(directory)}")
    except Exception as exc:  # noqa: BLE001 - the run's own failure is the one to report
        say(f"e2e: could not save the container logs: {type(exc).__name__}: {exc}")


def _owns(owner: Path, session: str) -> bool:
    try:
        return owner.read_text().strip() == session
    except OSError:
        return False


def run_e2e(
    *,
    variant: str = "bookworm",
    keep: bool = False,
    stack: str | None = None,
    scenarios: list[str] | None = None,
    timeout_s: float = 300.0,
    log: Callable[[str], None] | None = None,
    image: str | None = None,
    logs_dir: Path | None = None,
) -> E2EReport:
    """Cluster up (or reuse), spike on every partition, every scenario, teardown if ours.

    "Ours" means this run found no running stack, claimed it (the owner file, under the stack
    lock, before ``up()``) and still holds the claim at the end: a start that failed partway
    is removed too, and a stack someone else started or took over in the meantime never is.
    A failed run first saves every container's log to ``logs_dir`` (default: the stack's
    ``Cluster.logs_dir``, ``reports/logs/<stack>/``).
    """
    from harness.cluster import Cluster, default_stack_name

    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    started = time.monotonic()
    cluster = Cluster(stack or default_stack_name(), variant=variant, image=image)
    report = E2EReport(variant=variant, stack=cluster.name)
    session = f"e2e-{uuid.uuid4().hex}"
    owner = stack_owner_path(cluster.name)
    raised = False
    try:
        # The lock the pytest plugin takes, so an e2e run and a test session never race up().
        with stack_lock(cluster.name):
            was_running = cluster.is_running()
            say(f"e2e: {'reusing' if was_running else 'starting'} stack {cluster.name} ({variant})")
            if not was_running:
                owner.parent.mkdir(parents=True, exist_ok=True)
                owner.write_text(session)
            reused = cluster.up()
            report.reused = reused or was_running
            if reused and not was_running and _owns(owner, session):
                owner.unlink()  # stopped containers someone left: restarted, not created
        report.cluster_s = time.monotonic() - started
        say(f"e2e: debug-CE spike on {', '.join(cluster.queues)}")
        report.results.append(_run_spike(cluster, timeout_s))
        with ScenarioContext(cluster, timeout_s=timeout_s) as ctx:  # removes its scratch
            for name in scenarios or list(SCENARIOS):
                say(f"e2e: scenario {name}")
                report.results.append(SCENARIOS[name](ctx))
    except BaseException:
        raised = True
        raise
    finally:
        _save_logs_if_failed(cluster, raised or not report.ok, say, logs_dir)  # before teardown
        with stack_lock(cluster.name):
            if _owns(owner, session):
                try:
                    if not keep:
                        say(f"e2e: tearing down stack {cluster.name}")
                        cluster.down()
                        report.torn_down = True
                finally:
                    owner.unlink(missing_ok=True)  # kept or gone: nobody's to remove now
        report.duration_s = time.monotonic() - started
    return report


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant",
        default=os.environ.get("SLURM_VARIANT", "bookworm"),
        help="Slurm variant from slurm-stack/variants.toml (bookworm, trixie)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        default=os.environ.get("KEEP", "0") == "1",
        help="leave the cluster running afterwards (also KEEP=1)",
    )
    parser.add_argument("--name", default=None, help="stack name (default: $INTERCEDE_STACK)")
    parser.add_argument(
        "--image",
        default=None,
        help="use this already-loaded stack image, skip the build "
        "(default: $INTERCEDE_STACK_IMAGE)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; the debug-CE spike always runs)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="bound on each wait for jobs (seconds)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where the report, the summary and DIRAC's transcripts go "
        "(default: reports/e2e-<variant>-<UTC time>)",
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    folder = args.report_dir or REPO_ROOT / "reports" / (
        f"e2e-{args.variant}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    )
    report = run_e2e(
        variant=args.variant,
        keep=args.keep,
        stack=args.name,
        scenarios=args.scenario,
        timeout_s=args.timeout,
        image=args.image,
        logs_dir=folder / "logs",  # a failed run's container logs, beside its report
    )
    summary = render_summary(report)
    (out or sys.stdout).write(summary)
    written = write_report(report, summary, folder)
    (out or sys.stdout).write(f"report: {written}\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


def write_report(report: E2EReport, summary: str, folder: Path) -> Path:
    """``report.json``, ``summary.txt`` and each DIRAC command's transcript (``<name>.txt``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (folder / "summary.txt").write_text(summary)
    for result in report.results:
        if result.transcript:
            (folder / f"{result.name}.txt").write_text(result.transcript)
    return folder
