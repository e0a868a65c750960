"""``regress``: no ``regress-<variant>`` stack outlives its variant, whatever the run did."""

from __future__ import annotations

import pytest

from harness.e2e import E2EReport
from harness.regress import _e2e_runner, run_regress


class Recorder:
    def __init__(self) -> None:
        self.downs: list[str] = []

    def teardown(self, stack: str) -> None:
        self.downs.append(stack)


def _report(stack: str, *, torn_down: bool) -> E2EReport:
    return E2EReport(variant="bookworm", stack=stack, torn_down=torn_down)


def test_a_failed_start_is_torn_down_before_the_next_variant() -> None:
    rec = Recorder()
    order: list[str] = []

    def run_one(variant: str, stack: str, timeout_s: float) -> E2EReport:
        order.append(f"run {stack}")
        if variant == "bookworm":
            raise RuntimeError("controller never became healthy")
        return _report(stack, torn_down=True)

    def teardown(stack: str) -> None:
        order.append(f"down {stack}")
        rec.teardown(stack)

    runner = _e2e_runner(False, run_one, teardown, log=lambda _: None)
    report = run_regress(["bookworm", "trixie"], runner, log=lambda _: None)
    assert order == ["run regress-bookworm", "down regress-bookworm", "run regress-trixie"]
    assert report.runs[0].error == "RuntimeError: controller never became healthy"
    assert report.runs[1].ok is False  # an empty e2e report is not a pass


def test_interrupt_tears_down_too_and_still_propagates() -> None:
    rec = Recorder()

    def run_one(variant: str, stack: str, timeout_s: float) -> E2EReport:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _e2e_runner(False, run_one, rec.teardown, log=lambda _: None)("trixie", "regress-t", 1.0)
    assert rec.downs == ["regress-t"]


def test_a_failing_teardown_does_not_hide_the_run_error() -> None:
    said: list[str] = []

    def run_one(variant: str, stack: str, timeout_s: float) -> E2EReport:
        raise RuntimeError("up failed")

    def teardown(stack: str) -> None:
        raise OSError("engine gone")

    with pytest.raises(RuntimeError, match="up failed"):
        _e2e_runner(False, run_one, teardown, log=said.append)("bookworm", "regress-b", 1.0)
    assert said == ["regress: tearing down regress-b after a failed run failed too: engine gone"]


def test_a_reused_leftover_stack_is_removed_once() -> None:
    rec = Recorder()
    runner = _e2e_runner(
        False, lambda v, s, t: _report(s, torn_down=False), rec.teardown, log=lambda _: None
    )
    report = runner("bookworm", "regress-bookworm", 1.0)
    assert rec.downs == ["regress-bookworm"]
    assert report.torn_down is True
    rec.downs.clear()
    runner2 = _e2e_runner(
        False, lambda v, s, t: _report(s, torn_down=True), rec.teardown, log=lambda _: None
    )
    runner2("bookworm", "regress-bookworm", 1.0)
    assert rec.downs == []


def test_keep_leaves_the_stack_even_after_a_failure() -> None:
    rec = Recorder()

    def run_one(variant: str, stack: str, timeout_s: float) -> E2EReport:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _e2e_runner(True, run_one, rec.teardown, log=lambda _: None)("bookworm", "regress-b", 1.0)
    report = _e2e_runner(
        True, lambda v, s, t: _report(s, torn_down=False), rec.teardown, log=lambda _: None
    )("bookworm", "regress-b", 1.0)
    assert rec.downs == []
    assert report.torn_down is False


def test_the_spike_report_is_read_from_its_public_json() -> None:
    """``intercede-debug-ce --json`` (schema_version 2) becomes one scenario row per check."""
    from harness.e2e import debug_ce_result

    document = {
        "schema_version": 2,
        "error": None,
        "queues": [
            {
                "queue": "main",
                "error": None,
                "checks": {
                    "load": {"state": "passed", "message": "running 0, waiting 0, queue UP"},
                    "status": {"state": "skipped", "message": "no job"},
                },
            },
            {"queue": "down", "error": "partition DOWN (PartitionDown)", "checks": {}},
        ],
    }
    result = debug_ce_result(document, 1.5)
    assert [(c.name, c.ok) for c in result.checks] == [
        ("main:load", True),
        ("main:status", False),
        ("down", False),
    ]
    assert result.checks[-1].message == "partition DOWN (PartitionDown)"
    assert not result.ok
    assert result.duration_s == 1.5
