"""A child Python interpreter for tests that need a fresh process (fork, signals, a copied tree).

One place for how it is started: the test's paths first on ``PYTHONPATH`` (so a copied or
checked-out ``intercede`` wins over any installed one), output captured as text, a timeout, and
the exit code left for the test to judge.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SRC", "run_python"]

SRC = str(Path(__file__).resolve().parents[2] / "src")
"""This checkout's library, for a child that must import it."""


def run_python(
    *args: str, pythonpath: Sequence[str | Path] = (SRC,), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python *args`` with ``pythonpath`` before the inherited ``PYTHONPATH``."""
    paths = [str(p) for p in pythonpath] + [os.environ.get("PYTHONPATH", "")]
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        check=False,
    )
