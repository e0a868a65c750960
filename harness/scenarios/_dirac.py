"""Run one :mod:`harness.dirac` scenario module in the DIRAC environment, as its own process.

DIRAC keeps process-wide state (``gConfig``, ``gLogger``, singletons of its clients), so each
scenario gets a fresh interpreter of ``.venv-dirac`` (``just dirac-env``), the CS file and a
result file; the harness turns the JSON it writes into a :class:`ScenarioResult`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ._context import ScenarioContext
from ._result import Check, ScenarioResult

__all__ = ["DIRAC_PYTHON_ENV", "DiracScenario", "dirac_python"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DIRAC_PYTHON_ENV = "INTERCEDE_DIRAC_PYTHON"
"""Overrides the DIRAC environment's interpreter (default ``.venv-dirac/bin/python``)."""


def dirac_python() -> Path:
    """The DIRAC environment's interpreter; ``FileNotFoundError`` saying how to make it."""
    path = Path(os.environ.get(DIRAC_PYTHON_ENV) or REPO_ROOT / ".venv-dirac" / "bin" / "python")
    if not path.exists():
        raise FileNotFoundError(f"no DIRAC environment at {path}: run ./just dirac-env")
    return path


@dataclass(frozen=True)
class DiracScenario:
    """A scenario name and the :mod:`harness.dirac` module that runs it."""

    name: str
    module: str
    with_host: bool = False
    """Run against the CS that also has the login node's ``BatchSystem = Host`` CE."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the scenario process (what a module reads to vary its run)."""

    def __call__(self, ctx: ScenarioContext) -> ScenarioResult:
        started = time.monotonic()
        result = ScenarioResult(name=self.name, dc_ids=())
        workdir = ctx.scratch / self.name
        workdir.mkdir(parents=True, exist_ok=True)
        report, log = workdir / "result.json", workdir / "output.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "HARNESS_TIMEOUT": str(ctx.timeout_s),
            "TMPDIR": str(workdir),
            **dict(self.env),
        }
        try:
            cs = ctx.cs_host_path if self.with_host else ctx.cs_path
            argv = [str(dirac_python()), "-m", self.module, "--cs", str(cs)]
            with log.open("wb") as sink:
                subprocess.run(
                    [*argv, "--result", str(report)],
                    cwd=workdir,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=3 * ctx.timeout_s + 120,
                    check=False,
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        if result.error is None:
            _read(report, log, result)
        result.duration_s = time.monotonic() - started
        return result


def _read(report: Path, log: Path, result: ScenarioResult) -> None:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        result.error = f"no result from the DIRAC process ({exc}); its output ends:\n{tail}"
        return
    result.dc_ids = tuple(data.get("dc_ids", ()))
    result.checks = [Check(c["name"], bool(c["ok"]), str(c["message"])) for c in data["checks"]]
    result.code_paths = list(data.get("code_paths", ()))
    result.measurements = dict(data.get("measurements", {}))
    result.transcript = data.get("transcript")
    result.error = data.get("error")
