"""Readiness verdicts from Slurm's own output: the parsing the harness's waits depend on."""

from __future__ import annotations

from harness.readiness import (
    Problem,
    accounting_problem,
    node_problems,
    parse_sacctmgr_column,
    parse_sinfo,
)

SINFO_ONE_LINE_PER_PARTITION = """\
worker1|idle
worker1|idle
worker2|mixed
worker2|mixed
"""


def test_parse_sinfo_collapses_partitions() -> None:
    assert parse_sinfo(SINFO_ONE_LINE_PER_PARTITION) == {"worker1": "idle", "worker2": "mixed"}


def test_parse_sinfo_ignores_blank_and_garbage_lines() -> None:
    assert parse_sinfo("\n  \nslurm_load_partitions: error\nworker1|IDLE\n") == {"worker1": "idle"}


def test_usable_states_are_ready() -> None:
    states = {"worker1": "idle", "worker2": "allocated", "worker3": "completing"}
    assert node_problems(states, states) == []


def test_not_responding_drained_down_and_missing_nodes_are_problems() -> None:
    states = parse_sinfo(
        "worker1|idle*\nworker2|down*\nworker3|drained\nworker4|idle+drain\nworker5|unknown\n"
    )
    problems = node_problems(states, [f"worker{i}" for i in range(1, 7)])
    assert [p.service for p in problems] == [f"worker{i}" for i in range(1, 7)]
    assert problems[-1] == Problem("worker6", "not listed by sinfo")
    assert "down*" in problems[1].detail


def test_accounting_needs_cluster_and_user_association() -> None:
    assert accounting_problem("intercede\n", "submit\n", "intercede", "submit") is None
    missing_cluster = accounting_problem("", "", "intercede", "submit")
    assert missing_cluster is not None
    assert missing_cluster.service == "dbd"
    assert "not registered" in missing_cluster.detail
    missing_user = accounting_problem("intercede|x|y\n", "\n", "intercede", "submit")
    assert missing_user is not None
    assert "association" in missing_user.detail


def test_parse_sacctmgr_column_takes_first_field() -> None:
    assert parse_sacctmgr_column("a|1\n\nb|2\n") == ["a", "b"]
