"""What a scenario reports: named checks with messages, the time it took, and one verdict.

A scenario never stops at the first failed check (an operator wants every problem of a run at
once); only a whole-scenario error (the cluster went away) ends it early, and that error is
kept in the result rather than lost in a traceback.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from intercede.models import Submission

__all__ = [
    "Check",
    "Recorder",
    "ScenarioFailed",
    "ScenarioResult",
    "describe_submission",
    "run_scenario",
]


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


class Recorder:
    """Collects checks; ``check`` returns the condition so a scenario can branch on it."""

    def __init__(self, result: ScenarioResult) -> None:
        self.result = result

    def check(self, name: str, ok: bool, message: str) -> bool:
        self.result.checks.append(Check(name, bool(ok), message))
        return bool(ok)

    def passed(self, name: str, message: str) -> None:
        self.check(name, True, message)

    def failed(self, name: str, message: str) -> None:
        self.check(name, False, message)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step whose unexpected exception becomes a failed check, and the scenario goes on."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - report every problem, keep going
            self.failed(name, f"{type(exc).__name__}: {exc}")


def run_scenario(
    name: str, dc_ids: tuple[str, ...], body: Callable[[Recorder], None]
) -> ScenarioResult:
    """Time ``body`` and turn an escaping exception into ``result.error`` (with its origin)."""
    result = ScenarioResult(name=name, dc_ids=dc_ids)
    started = time.monotonic()
    try:
        body(Recorder(result))
    except Exception as exc:  # noqa: BLE001 - a scenario reports, it never crashes the run
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        result.error = f"{type(exc).__name__}: {exc} (at {frame.filename}:{frame.lineno})"
    finally:
        result.duration_s = time.monotonic() - started
    return result


def describe_submission(submission: Submission) -> str:
    """Job ids and refusals in a line, for check messages."""
    text = f"{len(submission.handles)} job(s): " + ", ".join(
        submission.handles[i].id for i in sorted(submission.handles)
    )
    if submission.failures:
        text += f"; refused: {dict(submission.failures)}"
    return text
