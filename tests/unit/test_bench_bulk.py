"""The bulk benchmark's own arithmetic: Slurm's array chunks, medians, targets and the table.

The measurements need the cluster (``just bench-bulk``); what turns them into a verdict does
not, and a wrong limit or a silently dropped round-trip check would pass a regression.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bulk_ops  # noqa: E402
from cycle import array_chunks  # noqa: E402


def test_arrays_are_chunked_below_max_array_size() -> None:
    assert array_chunks(5000, 1001) == [1001, 1001, 1001, 1001, 996]
    assert array_chunks(1000, 1001) == [1000]
    assert array_chunks(1001, 1001) == [1001]
    assert sum(array_chunks(12345, 1001)) == 12345


def _ours(s: float, trips: int = 1) -> dict[str, Any]:
    return {"s": s, "trips": trips, "not_ok": 0, "e.g.": None}


def test_median_cell_keeps_every_round_and_the_round_trips_seen() -> None:
    cell = bulk_ops.median_cell(
        [{"kill": _ours(0.3)}, {"kill": _ours(0.1)}, {"kill": {**_ours(0.2, 2), "not_ok": 4}}]
    )
    assert cell["kill"]["s"] == 0.2
    assert cell["kill"]["rounds_s"] == [0.3, 0.1, 0.2]
    assert cell["kill"]["trips"] == [1, 2]
    assert cell["kill"]["not_ok"] == 4


def _data(kill_trips: int = 1) -> dict[str, Any]:
    ops = {"submit": 1, "status": 1, "kill": kill_trips, "get_output": 2, "purge": 2}
    ours = {op: {"s": 0.5, "trips": [t], "not_ok": 0} for op, t in ops.items()}
    floor = {op: {"s": 0.01} for op in ops}
    return {
        "cells": {
            "intercede-ssh|1000": ours,
            "floor-ssh|1000": floor,
            "dirac-ssh-ce|1000": {"submit": {"s": 10.0}, "status": {"s": 0.1}},
        },
        "notes": {},
        "rss_mb": {"5000": 99.0},
    }


def test_targets_are_computed_against_the_floor_of_the_same_run() -> None:
    checks = {t["target"]: t for t in bulk_ops.targets(_data())}
    submit = checks["ssh: submit 1000 <= 5x sbatch --array floor"]
    assert (submit["value"], submit["limit"], submit["met"]) == (0.5, 0.05, False)
    kill = checks["ssh: kill 1000 <= 3x scancel floor + one status"]
    assert kill["limit"] == 3 * 0.01 + 0.5
    assert checks["ssh: client peak RSS for 5000 <= 100 MB"]["met"] is True
    assert checks["ssh: purge 5000 <= 1 s"]["met"] is None  # N = 5000 was not run
    assert checks["ssh: submit 1000 ahead of DIRAC SSH CE"]["met"] is True
    assert checks["ssh: status 1000 ahead of DIRAC SSH CE"]["met"] is False


def test_a_round_trip_change_fails_the_run() -> None:
    assert bulk_ops.round_trip_failures(_data()) == []
    (failure,) = bulk_ops.round_trip_failures(_data(kill_trips=2))
    assert "intercede-ssh|1000 kill: [2] round trips, expected 1" in failure


def test_the_table_says_why_a_cell_is_empty() -> None:
    lines = bulk_ops.table(_data(), [1000])
    kill = next(line for line in lines if line.startswith("| kill | 1000 |"))
    assert "0.500 (50.0x)" in kill
    assert "– [" in kill  # DIRAC's kill: not in this data
    text = "\n".join(lines)
    assert bulk_ops.NO_PEER_OP in text
    assert bulk_ops.NO_DIRAC_OP in text
