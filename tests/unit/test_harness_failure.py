"""A stack that does not come up must say which service failed and show that service's log.

``Cluster.wait_ready`` is driven here against an in-memory Docker stand-in: containers with a
status, a health, canned ``exec_run`` answers and a log, so every branch of the failure path is
exercised without an engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from harness import engine
from harness.cluster import Cluster, StackError
from harness.lifecycle import LOG_TAIL
from harness.nodes import NodeAccess
from harness.stack import LABEL_NODE, LABEL_STACK

Exec = Callable[[list[str]], tuple[int, str]]


class ExecResult:
    def __init__(self, exit_code: int, output: bytes) -> None:
        self.exit_code, self.output = exit_code, output


class FakeContainer:
    def __init__(self, stack: str, node: str, log: str, status: str = "running") -> None:
        self.name = f"{stack}-{node}"
        self.labels = {LABEL_STACK: stack, LABEL_NODE: node}
        self.status = status
        self.attrs: dict[str, Any] = {"State": {"Health": {"Status": "healthy"}}}
        self.log = log
        self.log_tails: list[object] = []
        self.answer: Exec = lambda argv: (0, "")

    def logs(self, stdout: bool, stderr: bool, tail: object) -> bytes:
        self.log_tails.append(tail)
        return self.log.encode()

    def exec_run(self, argv: list[str], **kwargs: Any) -> ExecResult:
        code, out = self.answer(argv)
        return ExecResult(code, out.encode())


class FakeContainers:
    def __init__(self, items: Mapping[str, FakeContainer]) -> None:
        self.items = dict(items)

    def list(self, all: bool = False, filters: Mapping[str, str] | None = None) -> list[Any]:
        return list(self.items.values())

    def get(self, name: str) -> FakeContainer:
        return next(c for c in self.items.values() if c.name == name)


class FakeDocker:
    def __init__(self, containers: Mapping[str, FakeContainer]) -> None:
        self.containers = FakeContainers(containers)


def healthy_controller(cluster: Cluster, sinfo: Callable[[], str]) -> Exec:
    """sinfo answers from ``sinfo()``; accounting always knows the cluster and the user."""

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[0] == "sinfo":
            return 0, sinfo()
        if "cluster" in argv:
            return 0, f"{cluster.cluster_name}|\n"
        return 0, f"{cluster.user}|\n"

    return answer


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> tuple[Cluster, dict[str, FakeContainer]]:
    cluster = Cluster("unitstack", workers=2, log=lambda _: None)
    containers = {
        node: FakeContainer(cluster.name, node, log=f"{node} line 1\n{node} boom\n")
        for node in cluster.nodes
    }
    monkeypatch.setattr(engine, "client", lambda *a, **k: FakeDocker(containers))
    monkeypatch.setattr(NodeAccess, "ssh", lambda self, command, timeout=60.0: (0, "main\n"))
    return cluster, containers


def all_idle(cluster: Cluster) -> str:
    return "".join(f"{w}|idle\n" for w in cluster.workers)


def test_dead_container_fails_at_once_naming_it_with_its_log_tail(
    stack: tuple[Cluster, dict[str, FakeContainer]],
) -> None:
    cluster, containers = stack
    containers["dbd"].status = "exited"
    containers["dbd"].log = "slurmdbd: error: mysql_real_connect failed\n"
    started = time.monotonic()
    with pytest.raises(StackError) as info:
        cluster.wait_ready(timeout=30)
    # A dead container will not recover: no waiting for the deadline.
    assert time.monotonic() - started < 5
    assert info.value.service == "dbd"
    message = str(info.value)
    assert "stack unitstack: service 'dbd' failed: container exited" in message
    assert f"--- last {LOG_TAIL} log lines of dbd ---" in message
    assert "mysql_real_connect failed" in message
    assert containers["dbd"].log_tails == [LOG_TAIL]
    # Only the failed service's log is shown.
    assert "controller boom" not in message


def test_worker_never_idle_times_out_naming_the_worker_and_its_log(
    stack: tuple[Cluster, dict[str, FakeContainer]],
) -> None:
    cluster, containers = stack
    containers["controller"].answer = healthy_controller(
        cluster, lambda: "worker1|idle\nworker2|down*\n"
    )
    containers["worker2"].log = "slurmd: error: Unable to register: Zero Bytes were transmitted\n"
    with pytest.raises(StackError) as info:
        cluster.wait_ready(timeout=1)
    assert info.value.service == "worker2"
    message = str(info.value)
    assert "not ready after 1s" in message
    assert "service 'worker2' failed: sinfo state 'down*'" in message
    assert "Unable to register" in message
    assert "worker1 boom" not in message


def test_unhealthy_container_is_waited_for_then_reported(
    stack: tuple[Cluster, dict[str, FakeContainer]],
) -> None:
    cluster, containers = stack
    containers["login"].attrs["State"]["Health"]["Status"] = "unhealthy"
    with pytest.raises(StackError) as info:
        cluster.wait_ready(timeout=1)
    assert info.value.service == "login"
    assert "service 'login' failed: health unhealthy" in str(info.value)
    assert "login boom" in str(info.value)


def test_accounting_problem_blames_dbd(stack: tuple[Cluster, dict[str, FakeContainer]]) -> None:
    cluster, containers = stack

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[0] == "sinfo":
            return 0, all_idle(cluster)
        return 0, ""  # sacctmgr knows no cluster yet

    containers["controller"].answer = answer
    with pytest.raises(StackError) as info:
        cluster.wait_ready(timeout=1)
    assert info.value.service == "dbd"
    message = str(info.value)
    assert f"cluster {cluster.cluster_name!r} not registered in accounting" in message
    assert "dbd boom" in message


def test_ssh_failure_blames_login(
    stack: tuple[Cluster, dict[str, FakeContainer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, containers = stack
    containers["controller"].answer = healthy_controller(cluster, lambda: all_idle(cluster))
    monkeypatch.setattr(
        NodeAccess,
        "ssh",
        lambda self, command, timeout=60.0: (255, "Permission denied (publickey)"),
    )
    with pytest.raises(StackError) as info:
        cluster.wait_ready(timeout=1)
    assert info.value.service == "login"
    assert "Permission denied (publickey)" in str(info.value)


def test_missing_log_does_not_hide_the_failure(
    stack: tuple[Cluster, dict[str, FakeContainer]],
) -> None:
    cluster, containers = stack

    def broken_logs(stdout: bool, stderr: bool, tail: object) -> bytes:
        raise RuntimeError("engine went away")

    containers["controller"].status = "exited"
    containers["controller"].logs = broken_logs  # type: ignore[method-assign]
    with pytest.raises(StackError) as info:
        cluster.wait_ready(timeout=30)
    assert info.value.service == "controller"
    assert str(info.value) == "stack unitstack: service 'controller' failed: container exited"


def test_stack_that_becomes_ready_raises_nothing(
    stack: tuple[Cluster, dict[str, FakeContainer]],
) -> None:
    cluster, containers = stack
    answers = iter(["worker1|idle*\nworker2|idle\n"])
    containers["controller"].answer = healthy_controller(
        cluster, lambda: next(answers, all_idle(cluster))
    )
    cluster.wait_ready(timeout=10)
    assert cluster.readiness_problem() is None
