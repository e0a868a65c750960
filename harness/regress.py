"""``python -m harness regress`` (``just regress``): every scenario on every Slurm variant.

The nightly question is "did a Slurm version change break a DIRAC consumer?", so each variant
gets a fresh cluster under its own stack name (``regress-<variant>``), the whole e2e run
(debug-CE spike + every consumer scenario), and teardown, one variant after another (the
machines have two cores; two clusters at once would only measure contention). A variant whose
cluster never came up is reported as a failed row, never left out. The result is a dated JSON
file for machines and a Markdown table (scenario x variant, pass/fail, timings) for people,
under the git-ignored ``reports/``; a variant that fails leaves every container's log under
``reports/logs/regress-<variant>/`` (saved by the e2e run before its teardown).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DEFAULT_VARIANTS",
    "RegressReport",
    "VariantRun",
    "configure",
    "main",
    "render_markdown",
    "run_regress",
    "write_report",
]

DEFAULT_VARIANTS = ("bookworm", "trixie")
STACK_PREFIX = "regress"


class _Result(Protocol):
    """What a report row needs from a scenario result (``harness.scenarios.ScenarioResult``)."""

    name: str
    duration_s: float

    @property
    def ok(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


class _E2E(Protocol):
    """What the report needs from one e2e run (``harness.e2e.E2EReport``)."""

    @property
    def results(self) -> Sequence[_Result]: ...

    cluster_s: float
    duration_s: float
    torn_down: bool

    @property
    def ok(self) -> bool: ...


Runner = Callable[[str, str, float], _E2E]
"""``(variant, stack name, timeout_s) -> e2e report``; raises when the cluster cannot start."""


@dataclass
class VariantRun:
    """One variant's outcome: its e2e report, or the error that stopped it before any result."""

    variant: str
    stack: str
    report: _E2E | None = None
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and self.report.ok

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        return {
            "variant": self.variant,
            "stack": self.stack,
            "ok": self.ok,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "cluster_s": round(report.cluster_s, 3) if report is not None else None,
            "scenarios": [r.to_dict() for r in report.results] if report is not None else [],
        }


@dataclass
class RegressReport:
    started_at: datetime
    image: str | None = None
    """``INTERCEDE_STACK_IMAGE`` when a prebuilt (e.g. Nix) image was used, else ``None``."""
    runs: list[VariantRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(run.ok for run in self.runs)

    def scenario_names(self) -> list[str]:
        """Every scenario seen in any variant, in first-seen order."""
        names: dict[str, None] = {}
        for run in self.runs:
            for result in run.report.results if run.report is not None else ():
                names.setdefault(result.name, None)
        return list(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "intercede-regress",
            "started_at": self.started_at.isoformat(),
            "image": self.image,
            "ok": self.ok,
            "variants": [run.variant for run in self.runs],
            "scenarios": self.scenario_names(),
            "runs": [run.to_dict() for run in self.runs],
        }


def _cell(run: VariantRun, scenario: str) -> str:
    if run.report is None:
        return "FAIL (no cluster)"
    for result in run.report.results:
        if result.name == scenario:
            return f"{'pass' if result.ok else 'FAIL'} ({result.duration_s:.1f} s)"
    return "FAIL (not run)"


def render_markdown(report: RegressReport) -> str:
    """Scenario x variant table, per-variant timings, then every failure in words."""
    variants = [run.variant for run in report.runs]
    lines = [
        f"# interCEde regression {report.started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Overall: **{'pass' if report.ok else 'FAIL'}**. Stack image: "
        f"{report.image or 'built from slurm-stack/Dockerfile per variant'}.",
        "",
        "| scenario | " + " | ".join(variants) + " |",
        "| --- |" + " --- |" * len(variants),
    ]
    for scenario in report.scenario_names():
        cells = [_cell(run, scenario) for run in report.runs]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += ["", "| variant | cluster up | whole run | result |", "| --- | --- | --- | --- |"]
    for run in report.runs:
        up = f"{run.report.cluster_s:.1f} s" if run.report is not None else "—"
        lines.append(
            f"| {run.variant} | {up} | {run.duration_s:.1f} s | {'pass' if run.ok else 'FAIL'} |"
        )
    problems = []
    for run in report.runs:
        if run.error is not None:
            problems.append(f"- {run.variant}: {run.error}")
        for result in run.report.results if run.report is not None else ():
            if result.ok:
                continue
            data = result.to_dict()
            if data.get("error"):
                problems.append(f"- {run.variant} / {result.name}: error: {data['error']}")
            for check in data.get("checks", []):
                if not check.get("ok", True):
                    problems.append(
                        f"- {run.variant} / {result.name} / {check['name']}: {check['message']}"
                    )
            if not data.get("error") and not any(
                not c.get("ok", True) for c in data.get("checks", [])
            ):
                problems.append(f"- {run.variant} / {result.name}: no check was recorded")
    if problems:
        lines += ["", "## Failures", "", *problems]
    return "\n".join(lines) + "\n"


def write_report(report: RegressReport, out_dir: Path) -> tuple[Path, Path]:
    """``regress-<UTC timestamp>.json`` and ``.md``; a second run never overwrites the first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"regress-{report.started_at:%Y%m%dT%H%M%SZ}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    n = 1
    while json_path.exists() or md_path.exists():
        n += 1
        json_path, md_path = out_dir / f"{stem}-{n}.json", out_dir / f"{stem}-{n}.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _down(stack: str) -> None:
    from harness.cluster import Cluster

    Cluster(stack).down()


def _e2e_runner(
    keep: bool,
    run_one: Runner | None = None,
    teardown: Callable[[str], None] = _down,
    log: Callable[[str], None] | None = None,
) -> Runner:
    """Run one variant and, unless ``keep``, leave no ``regress-<variant>`` stack behind.

    Teardown happens whatever the run did: a cluster that failed to come up, or an e2e run
    that raised, must not stay up beside the next variant's cluster on a two-core machine.
    A leftover stack from an aborted night that ``run_e2e`` reused (and so did not remove)
    is ours too.
    """
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))

    def e2e(variant: str, stack: str, timeout_s: float) -> _E2E:
        from harness.e2e import run_e2e

        return run_e2e(variant=variant, keep=keep, stack=stack, timeout_s=timeout_s)

    inner = run_one or e2e

    def run(variant: str, stack: str, timeout_s: float) -> _E2E:
        try:
            report = inner(variant, stack, timeout_s)
        except BaseException:
            if not keep:
                try:
                    teardown(stack)
                except Exception as exc:  # noqa: BLE001 - the run's own error is the one to show
                    say(f"regress: tearing down {stack} after a failed run failed too: {exc}")
            raise
        if not keep and not report.torn_down:
            teardown(stack)
            report.torn_down = True
        return report

    return run


def run_regress(
    variants: Sequence[str],
    runner: Runner,
    *,
    timeout_s: float = 300.0,
    stack_prefix: str = STACK_PREFIX,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    log: Callable[[str], None] | None = None,
) -> RegressReport:
    """Each variant in turn; an exception from one variant is recorded and the next goes on."""
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    report = RegressReport(started_at=now(), image=os.environ.get("INTERCEDE_STACK_IMAGE"))
    for variant in variants:
        run = VariantRun(variant=variant, stack=f"{stack_prefix}-{variant}")
        say(f"regress: variant {variant} on stack {run.stack}")
        started = time.monotonic()
        try:
            run.report = runner(variant, run.stack, timeout_s)
        except Exception as exc:  # noqa: BLE001 - one broken variant must not hide the others
            run.error = f"{type(exc).__name__}: {exc}"
        run.duration_s = time.monotonic() - started
        say(f"regress: variant {variant}: {'pass' if run.ok else 'FAIL'}")
        report.runs.append(run)
    return report


def _parse_variants(text: str) -> list[str]:
    from harness.config import load_variants

    names = [v.strip() for v in text.split(",") if v.strip()]
    known = load_variants()
    unknown = [v for v in names if v not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {unknown or text!r}; known: {', '.join(sorted(known))}"
        )
    return names


def configure(parser: argparse.ArgumentParser) -> None:
    from harness.config import REPO_ROOT

    parser.add_argument(
        "--variants",
        type=_parse_variants,
        default=list(DEFAULT_VARIANTS),
        help="comma-separated Slurm variants, run in this order (default: bookworm,trixie)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports", help="report directory")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="bound on each wait for jobs (seconds)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave each variant's cluster running afterwards"
    )


def main(args: argparse.Namespace) -> int:
    from harness.config import REPORT_DIR_ENV

    # A failed variant's container logs go beside the report (``<out>/logs/regress-<variant>/``).
    os.environ[REPORT_DIR_ENV] = str(args.out)
    report = run_regress(args.variants, _e2e_runner(args.keep), timeout_s=args.timeout)
    json_path, md_path = write_report(report, args.out)
    sys.stdout.write(render_markdown(report))
    print(f"\nreport: {md_path} and {json_path}")
    return 0 if report.ok else 1
