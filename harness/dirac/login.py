"""Looking at the login node from outside the CE under test: its own OpenSSH session.

Used to count the submit user's SSH sessions (a CE's connection must be gone after
``shutdown()``) and to read what a job left behind, independently of interCEde.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import Any

__all__ = ["count_sessions", "login_run", "ssh_connections"]


def login_run(ce_parameters: Mapping[str, Any], command: str, timeout: float = 60.0) -> str:
    """Run ``command`` on the CE's host with OpenSSH and the CE's own key and known_hosts."""
    argv = [
        "ssh",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={ce_parameters['SSHKnownHosts']}",
        "-o", "StrictHostKeyChecking=yes",
        "-i", str(ce_parameters["SSHKey"]),
        "-p", str(ce_parameters["SSHPort"]),
        f"{ce_parameters['SSHUser']}@{ce_parameters['SSHHost']}",
        command,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ssh {command!r}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def count_sessions(ce_parameters: Mapping[str, Any]) -> int:
    """The submit user's SSH sessions on the login node, this counting session excluded."""
    user = ce_parameters["SSHUser"]
    out = login_run(ce_parameters, f"pgrep -c -u {user} -f '^sshd(-session)?: {user}' || true")
    return int(out.strip() or 0) - 1


def ssh_connections(ce_parameters: Mapping[str, Any]) -> int:
    """This process's established TCP connections to the CE's SSH endpoint (its CEs' own)."""
    import psutil  # one of DIRAC's requirements

    port = int(ce_parameters["SSHPort"])
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )
