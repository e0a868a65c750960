"""What every DIRAC scenario process shares: the CS, the result file, and a real pilot proxy.

A scenario module defines ``run(cs: Path, report: Report) -> None`` and ends with
``raise SystemExit(main(run, SCENARIO))``. ``main`` parses ``--cs``/``--result``, loads the CS
into ``gConfig`` before any DIRAC agent module is imported, runs the scenario, and writes the
report as JSON even when the scenario raised (the traceback goes into ``error``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "load_cs", "main", "make_proxy"]


@dataclass
class Report:
    """The checks a scenario made and the DIRAC code paths it ran, for the e2e report."""

    scenario: str
    dc_ids: tuple[str, ...] = ()
    code_paths: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    measurements: dict[str, float] = field(default_factory=dict)
    transcript: str | None = None
    """What a DIRAC command printed, kept in the e2e report."""
    error: str | None = None

    def ran(self, code_path: str) -> None:
        """Record a DIRAC function or method this scenario called (``Module.Class.method``)."""
        if code_path not in self.code_paths:
            self.code_paths.append(code_path)

    def check(self, name: str, ok: bool, message: str = "") -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "message": message})
        print(f"[scenario] {'ok  ' if ok else 'FAIL'} {name}: {message}", file=sys.stderr)
        return bool(ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "dc_ids": list(self.dc_ids),
            "code_paths": self.code_paths,
            "checks": self.checks,
            "measurements": self.measurements,
            "transcript": self.transcript,
            "error": self.error,
        }


def load_cs(path: Path) -> None:
    """Load ``path`` as the whole local CS, the way DIRAC's agent unit tests do."""
    from DIRAC import gConfig
    from DIRAC.ConfigurationSystem.Client import ConfigurationData
    from diraccfg import CFG

    ConfigurationData.gConfigurationData.localCFG = CFG()
    cfg = CFG()
    cfg.loadFromFile(str(path))
    gConfig.loadCFG(cfg)


def make_proxy(dn_cn: str = "harness pilot", lifetime_s: int = 3 * 86400) -> Any:
    """A real ``X509Chain`` proxy, made by DIRAC's own code from a throwaway self-signed
    certificate: what ``gProxyManager`` would hand an agent (its service is not here)."""
    from DIRAC.Core.Security.X509Chain import X509Chain

    with tempfile.TemporaryDirectory(prefix="harness-proxy-") as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7"),
                *("-subj", f"/O=InterCEde/CN={dn_cn}", "-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
        )
        chain = X509Chain()
        _ok(chain.loadChainFromFile(str(cert)), "load certificate")
        _ok(chain.loadKeyFromFile(str(key)), "load key")
        pem = _ok(chain.generateProxyToString(lifetime_s), "generate proxy")
    proxy = X509Chain()
    _ok(proxy.loadProxyFromString(pem), "load proxy")
    return proxy


def _ok(result: dict[str, Any], what: str) -> Any:
    if not result["OK"]:
        raise RuntimeError(f"{what}: {result['Message']}")
    return result.get("Value")


def main(run: Callable[[Path, Report], None], scenario: str, dc_ids: tuple[str, ...]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m harness.dirac.{scenario}")
    parser.add_argument("--cs", type=Path, required=True, help="the CS file (harness.dirac_cs)")
    parser.add_argument("--result", type=Path, required=True, help="write the JSON report here")
    args = parser.parse_args()
    report = Report(scenario=scenario, dc_ids=dc_ids)
    started = time.monotonic()
    try:
        load_cs(args.cs)
        run(args.cs, report)
    except Exception:  # noqa: BLE001 - the report carries it; the harness shows it
        report.error = traceback.format_exc()
    report.measurements.setdefault("duration_s", round(time.monotonic() - started, 3))
    args.result.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    ok = report.error is None and bool(report.checks) and all(c["ok"] for c in report.checks)
    return 0 if ok else 1
