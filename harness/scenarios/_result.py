"""What a scenario reports: named checks with messages, the DIRAC code it ran, the time it took,
and one verdict.

A scenario never stops at the first failed check (an operator wants every problem of a run at
once); only a whole-scenario error (the cluster went away) ends it early, and that error is
kept in the result rather than lost in a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "ScenarioFailed", "ScenarioResult"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


@dataclass
class ScenarioResult:
    name: str
    dc_ids: tuple[str, ...]
    checks: list[Check] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    """Why the scenario stopped before its end, if it did."""
    code_paths: list[str] = field(default_factory=list)
    """The DIRAC functions and methods it ran (``DIRAC.<module>.<Class>.<method>``)."""
    measurements: dict[str, float] = field(default_factory=dict)
    transcript: str | None = None
    """What a DIRAC command printed (``dirac-admin-debug-ce``), kept in the e2e report."""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def passed(self) -> list[Check]:
        return [c for c in self.checks if c.ok]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def raise_for_failure(self) -> None:
        """Raise :class:`ScenarioFailed` listing every failed check (for pytest)."""
        if not self.ok:
            raise ScenarioFailed(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dc_ids": list(self.dc_ids),
            "ok": self.ok,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in self.checks],
            "code_paths": list(self.code_paths),
            "measurements": dict(self.measurements),
            "transcript": self.transcript,
        }


class ScenarioFailed(AssertionError):
    def __init__(self, result: ScenarioResult) -> None:
        self.result = result
        lines = [f"scenario {result.name} failed"]
        if result.error is not None:
            lines.append(f"  error: {result.error}")
        lines += [f"  {c.name}: {c.message}" for c in result.failed]
        if not result.checks and result.error is None:
            lines.append("  no check was recorded")
        super().__init__("\n".join(lines))
