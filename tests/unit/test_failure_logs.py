"""Where a failed run's container logs go, and that only a failed run with containers saves them.

tests/e2e/test_failure_logs.py proves the whole path on a real throwaway stack; these pin the
decisions in `harness.e2e._save_logs_if_failed` and the report folder's location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import config
from harness.cluster import Cluster, NodeStatus
from harness.e2e import _save_logs_if_failed


@dataclass
class _Cluster:
    states: list[str]
    dumped: list[Path] = field(default_factory=list)

    def status(self) -> list[NodeStatus]:
        return [NodeStatus(f"n{i}", f"c{i}", s, "-") for i, s in enumerate(self.states)]

    def dump_logs(self, directory: Path | None = None) -> Path:
        target = directory or Path("/saved")
        self.dumped.append(target)
        return target


def _save(cluster: _Cluster, failed: bool, directory: Path | None = None) -> list[str]:
    said: list[str] = []
    _save_logs_if_failed(cluster, failed, said.append, directory)  # type: ignore[arg-type]
    return said


def test_a_failed_run_saves_the_logs() -> None:
    cluster = _Cluster(["running", "exited"])
    assert _save(cluster, failed=True) == ["e2e: run failed; container logs saved to /saved"]
    assert cluster.dumped == [Path("/saved")]


def test_the_run_can_name_its_own_report_folder(tmp_path: Path) -> None:
    cluster = _Cluster(["running"])
    said = _save(cluster, failed=True, directory=tmp_path / "logs")
    assert said == [f"e2e: run failed; container logs saved to {tmp_path / 'logs'}"]
    assert cluster.dumped == [tmp_path / "logs"]


def test_a_passing_run_saves_nothing() -> None:
    cluster = _Cluster(["running"])
    assert _save(cluster, failed=False) == []
    assert cluster.dumped == []


def test_a_start_that_failed_keeps_the_logs_it_saved_itself() -> None:
    """Cluster._create saved them and removed the containers: do not overwrite them."""
    cluster = _Cluster(["missing", "missing"])
    assert _save(cluster, failed=True) == []
    assert cluster.dumped == []


def test_an_engine_error_is_reported_not_raised() -> None:
    class _Broken(_Cluster):
        def status(self) -> list[NodeStatus]:
            raise ConnectionError("engine gone")

    said = _save(_Broken([]), failed=True)
    assert said == ["e2e: could not save the container logs: ConnectionError: engine gone"]


def test_logs_go_to_the_report_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(config.REPORT_DIR_ENV, raising=False)
    assert Cluster("alpha").logs_dir == config.REPO_ROOT / "reports" / "logs" / "alpha"
    monkeypatch.setenv(config.REPORT_DIR_ENV, str(tmp_path))
    assert Cluster("alpha").logs_dir == tmp_path / "logs" / "alpha"


def test_regress_puts_logs_beside_its_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import argparse

    from harness import regress

    seen: list[str] = []

    def fake_run(variants: object, runner: object, **_: object) -> regress.RegressReport:
        seen.append(str(config.report_dir()))
        raise SystemExit(0)

    monkeypatch.setattr(regress, "run_regress", fake_run)
    monkeypatch.setattr(regress, "_e2e_runner", lambda keep: None)
    monkeypatch.setenv(config.REPORT_DIR_ENV, "/elsewhere")
    args = argparse.Namespace(variants=["bookworm"], out=tmp_path, timeout=1.0, keep=False)
    with pytest.raises(SystemExit):
        regress.main(args)
    assert seen == [str(tmp_path)]
