"""DIRAC's own ``dirac-admin-debug-ce`` against the cluster's InterCEde queues, no DIRAC server.

The script (``DIRAC/WorkloadManagementSystem/scripts/dirac_admin_debug_ce.py``) runs whole and
unmodified, in this process, with its own command line: ``dirac-admin-debug-ce <VO> --cfg
<CS file> --timeout N``. It builds every queue through ``getQueuesResolved`` and DIRAC's CE
factory, then per queue: ``getCEStatus``, ``submitJob``, ``getJobStatus`` until Done or
Failed, ``getJobOutput`` and ``getJobLog``, and prints DIRAC's summary.

Why in this process and not as a subprocess: the script decides that a CE needs pilot
credentials by its type name (``not ce.ceType.startswith("SSH")``), so for ``CEType =
InterCEde`` it asks for an admin proxy with ``FullDelegation`` and then calls the ProxyManager
and TokenManager *services*. Those two services are the only things replaced here; the admin
proxy is a real one, made by DIRAC's own code and carrying a CS group with ``FullDelegation``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.dirac._agent import Report, main
from harness.dirac._services import ProxyManagerStandIn
from harness.dirac_cs import VO

SCENARIO = "dirac-admin-debug-ce"
DC_IDS = ("DC-37",)
CHECKS = (
    "reported CE status",
    "submitted a job",
    "retrieved job status",
    "fetched job output",
    "fetched job log",
)


class TokenManagerStandIn:
    """``gTokenManager.getToken``: the TokenManager service is not here; a pilot token shape."""

    def __init__(self) -> None:
        self.calls = 0

    def getToken(self, *_: Any, **__: Any) -> dict[str, Any]:
        from DIRAC import S_OK

        self.calls += 1
        return dict(S_OK({"access_token": "harness-pilot-token", "expires_in": 3600}))


def _admin_proxy(directory: Path) -> Path:
    """A real proxy file of the CS group ``harness_admin`` (``FullDelegation``)."""
    from harness.dirac._agent import make_proxy

    proxy = make_proxy(lifetime_s=3600)
    chain_pem = proxy.dumpAllToString()["Value"]
    from DIRAC.Core.Security.X509Chain import X509Chain

    chain = X509Chain()
    chain.loadProxyFromString(chain_pem)
    grouped = chain.generateProxyToString(3600, diracGroup="harness_admin")
    if not grouped["OK"]:
        raise RuntimeError(grouped["Message"])
    path = directory / "admin.proxy"
    path.write_text(grouped["Value"])
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def _captured(path: Path) -> Iterator[None]:
    """Everything written to file descriptors 1 and 2 (gLogger holds the original streams)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run(cs: Path, report: Report) -> None:
    from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager
    from DIRAC.FrameworkSystem.Client.TokenManagerClient import gTokenManager
    from DIRAC.WorkloadManagementSystem.scripts import dirac_admin_debug_ce as script

    # What the script will run: every queue of the VO, the login node's Host CE included
    # when the CS has one (harness.dirac_cs.render_cs(with_host=True)).
    found = getQueues(community=VO)
    systems = [
        str(ce.get("BatchSystem"))
        for ces in (found.get("Value") or {}).values()
        for ce in ces.values()
        for _ in ce.get("Queues", {})
    ]
    report.measurements["queues"] = float(len(systems))
    report.check(
        "a BatchSystem = Host queue is among the queues",
        "Host" in systems,
        f"queues by BatchSystem: {sorted(systems)}",
    )
    proxies, tokens = ProxyManagerStandIn(), TokenManagerStandIn()
    gProxyManager.getPilotProxyFromDIRACGroup = proxies.getPilotProxyFromDIRACGroup
    gTokenManager.getToken = tokens.getToken
    timeout = str(int(float(os.environ.get("HARNESS_TIMEOUT", "240"))))  # DIRAC: int(val)
    with tempfile.TemporaryDirectory(prefix="harness-debug-ce-") as tmp:
        os.environ["X509_USER_PROXY"] = str(_admin_proxy(Path(tmp)))
        argv = ["dirac-admin-debug-ce", "harness", "--cfg", str(cs), "--timeout", timeout]
        report.ran("DIRAC.WorkloadManagementSystem.scripts.dirac_admin_debug_ce.main")
        log = Path(tmp, "output.txt")
        saved, sys.argv = sys.argv, argv
        code: Any = 0
        try:
            with _captured(log):
                script.main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.argv = saved
        text = log.read_text(errors="replace")
    sys.stderr.write(text)
    report.measurements["output_lines"] = float(len(text.splitlines()))
    report.transcript = text
    report.check("exit status 0", code in (0, None), f"exit {code}; command: {' '.join(argv)}")
    report.check(
        "ran without remote configuration",
        "Running without remote configuration" in text,
        "the CS came only from --cfg",
    )
    for check in CHECKS:
        line = re.search(rf"- (\d+)% of the queues correctly {check}\. Issues with (\d+)", text)
        report.check(
            f"DIRAC summary: {check}",
            bool(line) and line is not None and line.group(1) == "100" and line.group(2) == "0",
            line.group(0) if line else "summary line missing",
        )
    report.check(
        "credentials came from the replaced services",
        bool(proxies.calls) and tokens.calls > 0,
        f"proxy requests {len(proxies.calls)}, token requests {tokens.calls}",
    )


if __name__ == "__main__":
    raise SystemExit(main(run, SCENARIO, DC_IDS))
