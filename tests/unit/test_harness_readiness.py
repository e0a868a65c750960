"""Readiness: the verdicts from Slurm's own output, the probes built on them, and the wait."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest

from harness import faults
from harness.cluster import Cluster
from harness.readiness import (
    AccountingReady,
    ContainersUp,
    NotReady,
    Problem,
    SlurmNodesUsable,
    SshLogin,
    accounting_problem,
    first_problem,
    node_problems,
    parse_sacctmgr_column,
    parse_sinfo,
    wait_for,
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


# ------------------------------------------------------------------ probes and the wait


class Box:
    """A container as ``ContainersUp`` reads it: a status and Docker's State.Health."""

    def __init__(self, status: str = "running", health: str | None = "healthy") -> None:
        self.status = status
        self.attrs: dict[str, Any] = {"State": {"Health": {"Status": health}} if health else {}}


def _controller(answers: dict[str, tuple[int, str]]) -> Callable[[Sequence[str]], tuple[int, str]]:
    """Answers by the first word that differs between the probes' commands."""

    def run(argv: Sequence[str]) -> tuple[int, str]:
        key = "assoc" if "assoc" in argv else argv[0] if argv[0] == "sinfo" else "cluster"
        return answers[key]

    return run


def test_every_probe_names_what_it_waits_for() -> None:
    run = _controller({})
    probes = [
        ContainersUp(dict, ["login"]),
        SlurmNodesUsable(run, ["worker1", "worker2"]),
        AccountingReady(run, "c1", "submit"),
        SshLogin(lambda command, timeout: (0, ""), "submit"),
    ]
    assert [p.waits_for for p in probes] == [
        "every node's container running and healthy",
        "workers worker1, worker2 usable in sinfo",
        "cluster c1 and user submit registered in accounting",
        "ssh login as submit",
    ]


def test_containers_up_dead_is_fatal_unhealthy_is_not() -> None:
    boxes = {"login": Box(), "dbd": Box(health=None)}
    probe = ContainersUp(lambda: boxes, ["login", "dbd", "controller"])
    assert probe.problem() == Problem("controller", "container missing", fatal=True)
    boxes["controller"] = Box(status="exited")
    assert probe.problem() == Problem("controller", "container exited", fatal=True)
    boxes["controller"] = Box(health="starting")
    assert probe.problem() == Problem("controller", "health starting", fatal=False)
    boxes["controller"] = Box()
    assert probe.problem() is None


def test_slurm_nodes_usable_reports_sinfo_failure_then_the_first_bad_worker() -> None:
    answers = {"sinfo": (1, "slurm_load_node: Unable to contact slurm controller\n")}
    probe = SlurmNodesUsable(_controller(answers), ["worker1", "worker2"])
    assert probe.problem() == Problem(
        "controller", "sinfo failed: slurm_load_node: Unable to contact slurm controller"
    )
    answers["sinfo"] = (0, "worker1|idle\nworker2|down*\n")
    assert probe.problem() == Problem("worker2", "sinfo state 'down*'")
    answers["sinfo"] = (0, "worker1|idle\nworker2|mixed\n")
    assert probe.problem() is None


def test_accounting_ready_blames_dbd() -> None:
    answers = {"cluster": (1, "sacctmgr: error: slurmdbd down\n"), "assoc": (0, "")}
    probe = AccountingReady(_controller(answers), "c1", "submit")
    assert probe.problem() == Problem("dbd", "sacctmgr failed: sacctmgr: error: slurmdbd down")
    answers["cluster"] = (0, "c1|\n")
    problem = probe.problem()
    assert problem is not None
    assert "user 'submit' has no association" in problem.detail
    answers["assoc"] = (0, "submit|\n")
    assert probe.problem() is None


def test_ssh_login_blames_login_for_refusal_and_timeout() -> None:
    def refused(command: str, timeout: float) -> tuple[int, str]:
        return 255, "Permission denied (publickey)\n"

    def hangs(command: str, timeout: float) -> tuple[int, str]:
        raise subprocess.TimeoutExpired(["ssh"], timeout)

    assert SshLogin(refused, "submit").problem() == Problem(
        "login", "ssh as submit failed (255): Permission denied (publickey)"
    )
    assert SshLogin(hangs, "submit").problem() == Problem("login", "ssh timed out")


class Scripted:
    """A probe whose answers are given in advance; it counts how often it was asked."""

    waits_for = "a scripted answer"

    def __init__(self, *answers: Problem | None) -> None:
        self.answers = list(answers)
        self.asked = 0

    def problem(self) -> Problem | None:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_first_problem_stops_at_the_first_probe_with_one() -> None:
    first, second, third = Scripted(None), Scripted(Problem("dbd", "x")), Scripted(None)
    assert first_problem([first, second, third]) == Problem("dbd", "x")
    assert (first.asked, second.asked, third.asked) == (1, 1, 0)


def test_wait_for_retries_until_every_probe_passes() -> None:
    clock = FakeClock()
    slow = Scripted(Problem("worker1", "sinfo state 'idle*'"), Problem("worker1", "x"), None)
    wait_for([Scripted(None), slow], timeout=10, interval=0.5, clock=clock, sleep=clock.sleep)
    assert slow.asked == 3
    assert clock.sleeps == [0.5, 0.5]


def test_wait_for_gives_up_at_the_deadline_with_the_last_problem() -> None:
    clock = FakeClock()
    stuck = Scripted(Problem("dbd", "not registered"))
    with pytest.raises(NotReady) as info:
        wait_for([stuck], timeout=2, interval=0.5, clock=clock, sleep=clock.sleep)
    assert info.value.problem == Problem("dbd", "not registered")
    assert info.value.timeout == 2
    assert stuck.asked == 5  # at 0, 0.5, 1, 1.5 and 2 seconds


def test_wait_for_does_not_wait_out_a_fatal_problem() -> None:
    clock = FakeClock()
    dead = Scripted(Problem("dbd", "container exited", fatal=True))
    with pytest.raises(NotReady) as info:
        wait_for([dead], timeout=300, clock=clock, sleep=clock.sleep)
    assert info.value.timeout is None
    assert info.value.problem.service == "dbd"
    assert clock.sleeps == []


def test_node_in_state_is_a_probe_over_the_controllers_sinfo() -> None:
    class Controller:
        def __init__(self) -> None:
            self.states = iter(["down*", "idle"])
            self.argv: list[str] = []

        def exec(self, node: str, argv: Sequence[str]) -> tuple[int, str]:
            assert node == "controller"
            self.argv = list(argv)
            return 0, f"worker1|{next(self.states)}\n"

    controller = Controller()
    probe = faults.NodeInState(cast(Cluster, controller), "worker1", ["idle", "mixed"])
    assert probe.waits_for == "worker1 in a state with idle or mixed"
    assert probe.problem() == Problem("worker1", "sinfo state 'down*'")
    assert controller.argv[:4] == ["sinfo", "-h", "-N", "-n"]
    assert probe.problem() is None
    assert probe.last == "idle"
