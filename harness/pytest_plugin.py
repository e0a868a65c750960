"""pytest plugin (``-p harness.pytest_plugin``): the shared Slurm stack as fixtures.

It is loaded for every pytest run, unit tests included, so it imports nothing heavy at module
level and never needs a container engine unless an e2e fixture is requested.

Sharing under pytest-xdist: every worker asks for ``slurm_cluster``; a file lock makes the
first one bring the stack up (or reuse a running one) while the others wait and then reuse it.
Only the controller process tears the stack down, and only when this session started it and
``KEEP`` is not ``1``: a stack someone was already using survives the run.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import TYPE_CHECKING

import pytest

from harness._lock import stack_lock, stack_owner_path

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.cluster import Cluster

__all__ = [
    "E2E_ENV",
    "SESSION_ENV",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "remote_workdir",
    "slurm_cluster",
]

E2E_ENV = "INTERCEDE_E2E"
SESSION_ENV = "INTERCEDE_PYTEST_SESSION"
_summary_key = pytest.StashKey[list[str]]()
_LOG_TAIL = 30
# Node ids of failed e2e tests seen by this process (the controller sees every worker's).
_FAILED_E2E: set[str] = set()


def _e2e_disabled() -> bool:
    return os.environ.get(E2E_ENV, "1") == "0"


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _stack_name() -> str:
    return os.environ.get("INTERCEDE_STACK", "intercede")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real Slurm cluster started by the harness")
    if _is_controller(config):
        # Inherited by xdist workers, which are spawned after configure.
        os.environ.setdefault(SESSION_ENV, uuid.uuid4().hex)
    config.stash[_summary_key] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _e2e_disabled():
        return
    skip = pytest.mark.skip(reason=f"{E2E_ENV}=0: end-to-end tests against the Slurm stack off")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the controller for reports coming from xdist workers, too.
    if report.failed and "e2e" in report.keywords:
        _FAILED_E2E.add(report.nodeid)


@pytest.fixture(scope="session")
def slurm_cluster() -> Cluster:
    """The shared stack (name from ``INTERCEDE_STACK``, variant from ``SLURM_VARIANT``)."""
    if _e2e_disabled():
        pytest.skip(f"{E2E_ENV}=0")
    from harness.cluster import Cluster

    cluster = Cluster(_stack_name())
    session = os.environ.get(SESSION_ENV, "")
    with stack_lock(cluster.name):
        was_running = cluster.is_running()
        cluster.up()
        owner = stack_owner_path(cluster.name)
        if not was_running and session:
            owner.write_text(session)
    return cluster


@pytest.fixture
def remote_workdir(slurm_cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh directory on the shared home, unique per test (left behind for post-mortems)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    path = f"{slurm_cluster.work_root}/tests/{safe}-{uuid.uuid4().hex[:8]}"
    code, out = slurm_cluster.exec("login", ["mkdir", "-p", path], user=slurm_cluster.user)
    if code != 0:
        raise RuntimeError(f"cannot create {path} on login: {out}")
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _is_controller(config):
        return
    name = _stack_name()
    owner = stack_owner_path(name)
    owned = owner.exists() and owner.read_text().strip() == os.environ.get(SESSION_ENV)
    if not owned and not _FAILED_E2E:
        return  # nothing to do: no engine needed
    try:
        from harness.cluster import Cluster

        cluster = Cluster(name)
        if _FAILED_E2E and cluster.is_running():
            target = cluster.dump_logs()
            lines = [f"e2e failures: container logs of stack {name} saved to {target}"]
            for node, text in cluster.logs(tail=_LOG_TAIL).items():
                lines.append(f"----- {node} (last {_LOG_TAIL} lines) -----")
                lines.extend(text.rstrip().splitlines())
            config.stash[_summary_key] = lines
        if owned and os.environ.get("KEEP", "0") != "1":
            cluster.down()
            owner.unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - a teardown problem must not mask test results
        config.stash[_summary_key] = [
            *config.stash.get(_summary_key, []),
            f"harness teardown failed: {type(exc).__name__}: {exc}",
        ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_summary_key, [])
    if not lines:
        return
    terminalreporter.write_sep("=", "interCEde Slurm stack")
    for line in lines:
        terminalreporter.write_line(line)
