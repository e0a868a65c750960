"""``harness.regress``: variant sequencing, failure accounting and the written report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.__main__ import build_parser
from harness.e2e import E2EReport
from harness.regress import (
    RegressReport,
    VariantRun,
    render_markdown,
    run_regress,
    write_report,
)
from harness.scenarios import Check, ScenarioResult

NOW = datetime(2026, 11, 27, 3, 4, 5, tzinfo=UTC)


def _scenario(name: str, ok: bool, duration: float = 1.5) -> ScenarioResult:
    check = Check("stamp in env", ok, "matched" if ok else "DIRAC_PILOT_STAMP missing")
    return ScenarioResult(name=name, dc_ids=("DC-05",), checks=[check], duration_s=duration)


def _e2e(variant: str, *results: ScenarioResult) -> E2EReport:
    return E2EReport(
        variant=variant, stack=f"regress-{variant}", results=list(results), cluster_s=42.0
    )


def _report() -> RegressReport:
    report = RegressReport(started_at=NOW)
    report.runs.append(
        VariantRun(
            "bookworm",
            "regress-bookworm",
            report=_e2e("bookworm", _scenario("debug-ce", True), _scenario("site_director", True)),
            duration_s=100.0,
        )
    )
    report.runs.append(
        VariantRun(
            "trixie",
            "regress-trixie",
            report=_e2e("trixie", _scenario("debug-ce", True), _scenario("site_director", False)),
            duration_s=90.0,
        )
    )
    return report


def test_variants_run_in_order_each_on_its_own_stack() -> None:
    calls: list[tuple[str, str, float]] = []

    def runner(variant: str, stack: str, timeout_s: float) -> E2EReport:
        calls.append((variant, stack, timeout_s))
        return _e2e(variant, _scenario("site_director", True))

    report = run_regress(
        ["trixie", "bookworm"], runner, timeout_s=12.0, now=lambda: NOW, log=lambda _: None
    )
    assert calls == [("trixie", "regress-trixie", 12.0), ("bookworm", "regress-bookworm", 12.0)]
    assert [run.variant for run in report.runs] == ["trixie", "bookworm"]
    assert report.ok


def test_a_variant_that_cannot_start_is_a_failed_row_and_the_next_still_runs() -> None:
    def runner(variant: str, stack: str, timeout_s: float) -> E2EReport:
        if variant == "bookworm":
            raise RuntimeError("controller never became healthy")
        return _e2e(variant, _scenario("site_director", True))

    report = run_regress(["bookworm", "trixie"], runner, now=lambda: NOW, log=lambda _: None)
    assert [run.variant for run in report.runs] == ["bookworm", "trixie"]
    broken, fine = report.runs
    assert broken.error == "RuntimeError: controller never became healthy"
    assert not broken.ok
    assert fine.ok
    assert not report.ok
    md = render_markdown(report)
    assert "| site_director | FAIL (no cluster) | pass (1.5 s) |" in md
    assert "- bookworm: RuntimeError: controller never became healthy" in md


def test_markdown_has_the_scenario_by_variant_matrix_and_every_failure() -> None:
    md = render_markdown(_report())
    assert md.startswith("# interCEde regression 2026-11-27 03:04 UTC")
    assert "Overall: **FAIL**" in md
    assert "| scenario | bookworm | trixie |" in md
    assert "| debug-ce | pass (1.5 s) | pass (1.5 s) |" in md
    assert "| site_director | pass (1.5 s) | FAIL (1.5 s) |" in md
    assert "| bookworm | 42.0 s | 100.0 s | pass |" in md
    assert "| trixie | 42.0 s | 90.0 s | FAIL |" in md
    assert "- trixie / site_director / stamp in env: DIRAC_PILOT_STAMP missing" in md


def test_a_scenario_missing_from_one_variant_is_not_dropped() -> None:
    report = _report()
    assert report.runs[1].report is not None
    report.runs[1].report.results.pop()  # trixie never ran site_director
    assert "| site_director | pass (1.5 s) | FAIL (not run) |" in render_markdown(report)


def test_write_report_writes_dated_json_and_markdown(tmp_path: Path) -> None:
    report = _report()
    json_path, md_path = write_report(report, tmp_path / "reports")
    assert json_path.name == "regress-20261127T030405Z.json"
    assert md_path.name == "regress-20261127T030405Z.md"
    data = json.loads(json_path.read_text())
    assert data["kind"] == "intercede-regress"
    assert data["started_at"] == "2026-11-27T03:04:05+00:00"
    assert data["ok"] is False
    assert data["variants"] == ["bookworm", "trixie"]
    assert data["scenarios"] == ["debug-ce", "site_director"]
    trixie = data["runs"][1]
    assert trixie["cluster_s"] == 42.0
    assert [s["ok"] for s in trixie["scenarios"]] == [True, False]
    assert md_path.read_text() == render_markdown(report)


def test_a_second_report_in_the_same_second_does_not_overwrite(tmp_path: Path) -> None:
    first = write_report(_report(), tmp_path)
    second = write_report(_report(), tmp_path)
    assert first[0] != second[0]
    assert second[0].name == "regress-20261127T030405Z-2.json"
    assert first[0].exists()


def test_stack_image_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERCEDE_STACK_IMAGE", "intercede-slurm-stack:nix-24")
    report = run_regress(
        ["bookworm"],
        lambda v, s, t: _e2e(v, _scenario("x", True)),
        now=lambda: NOW,
        log=lambda _: None,
    )
    assert report.to_dict()["image"] == "intercede-slurm-stack:nix-24"
    assert "intercede-slurm-stack:nix-24" in render_markdown(report)


def test_cli_is_registered_and_refuses_unknown_variants(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    args = parser.parse_args(["regress", "--variants", "trixie,bookworm"])
    assert args.variants == ["trixie", "bookworm"]
    with pytest.raises(SystemExit):
        parser.parse_args(["regress", "--variants", "bookworm,sid"])
    assert "unknown variant(s) ['sid']" in capsys.readouterr().err
