"""A DIRAC Configuration System file for a harness stack, with no DIRAC servers behind it.

DIRAC's agents, ``ComputingElementFactory`` and ``dirac-admin-debug-ce --cfg FILE`` read their
queues from the CS. This module writes one where every partition of the stack is a queue of one
CE of one site, reached the way DIRAC reaches any SSH site (``SSHHost``, ``SSHKey``, ...). It is
plain text generation, so it runs in the harness's environment; the DIRAC side
(:mod:`harness.dirac`) loads the file into ``gConfig`` as DIRAC's own agent tests do.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AGENTS",
    "SITE",
    "VO",
    "StackAccess",
    "ce_name",
    "host_ce_name",
    "render_cfg",
    "render_cs",
]

VO = "harness"
SITE = "DIRAC.Harness.org"
PILOT_GROUP = "harness_pilot"
PILOT_DN = "/O=InterCEde/CN=harness pilot"

AGENTS: Mapping[str, Mapping[str, Any]] = {
    # What DIRAC's agents read from their own section; accounting and monitoring go nowhere.
    "SiteDirector": {
        "VO": VO,
        "Site": SITE,
        "SendPilotAccounting": "False",
        "MaxPilotsToSubmit": 5000,
        "PilotStatusUpdateCycleFactor": 1,
        "WorkDirectory": "",
    },
    "PushJobAgent": {
        "VO": VO,
        "Site": SITE,
        "SubmissionPolicy": "JobWrapper",
        "CVMFSLocation": "/cvmfs/harness",
    },
}


@dataclass(frozen=True)
class StackAccess:
    """How to reach a stack's login node: read from the client config the harness writes."""

    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    work_root: str
    queues: tuple[str, ...]
    """The Slurm queues (one per partition)."""
    host_queues: Mapping[str, int] = field(default_factory=dict)
    """The ``scheduler = "host"`` queues (jobs on the login node itself) and their slots."""

    @classmethod
    def from_client_config(cls, path: Path) -> StackAccess:
        data = tomllib.loads(path.read_text())
        defaults = data["defaults"]
        queues: dict[str, dict[str, Any]] = data["queues"]
        hosts = {q: v for q, v in queues.items() if v.get("scheduler") == "host"}
        return cls(
            host=str(defaults["host"]),
            port=int(defaults["port"]),
            user=str(defaults["user"]),
            key=Path(data["credentials"]["ssh_key_file"]),
            known_hosts=Path(defaults["known_hosts"]),
            work_root=str(defaults["work_root"]),
            queues=tuple(q for q in queues if q not in hosts),
            host_queues={q: int(v.get("slots", 1)) for q, v in hosts.items()},
        )


def ce_name(stack: str) -> str:
    """The CE's name in the CS (DIRAC's ``GridCE``): the stack's login node."""
    return f"login.{stack}.harness"


def host_ce_name(stack: str) -> str:
    """The name of the CE that runs jobs on the login node itself (``BatchSystem = Host``)."""
    return f"host.{stack}.harness"


def render_cs(
    access: StackAccess,
    *,
    stack: str,
    ce_type: str = "InterCEde",
    work_area: str = "dirac",
    max_total_jobs: int = 10_000,
    max_waiting_jobs: int = 10_000,
    extra_ce: Mapping[str, Any] | None = None,
    extra_queue: Mapping[str, Mapping[str, Any]] | None = None,
    with_host: bool = False,
) -> str:
    """The CS text: one site, one CE (``ce_type``) on the stack's login node, a queue per
    partition, the agents' sections, and the Registry/Operations entries the agents look up.
    ``with_host`` adds a second CE on the same node with ``BatchSystem = Host`` and a queue
    per host queue of the client config (DIRAC's SSH CE default: no batch system)."""
    ce: dict[str, Any] = {
        "CEType": ce_type,
        "BatchSystem": "SLURM",
        "SSHHost": access.host,
        "SSHPort": access.port,
        "SSHUser": access.user,
        "SSHKey": str(access.key),
        "SSHKnownHosts": str(access.known_hosts),
        "SharedArea": access.work_root,
        "WorkArea": work_area,
        "architecture": "x86_64",
        **(extra_ce or {}),
    }
    common = {
        "MaxTotalJobs": max_total_jobs,
        "MaxWaitingJobs": max_waiting_jobs,
        "NumberOfProcessors": 1,
        "maxCPUTime": 1440,
        "VO": VO,
    }
    ce["Queues"] = {q: {**common, **(extra_queue or {}).get(q, {})} for q in access.queues}
    ces = {ce_name(stack): ce}
    if with_host and access.host_queues:
        ces[host_ce_name(stack)] = {
            **{k: v for k, v in ce.items() if k != "Queues"},
            "BatchSystem": "Host",
            "Queues": {q: {**common, "Slots": n} for q, n in access.host_queues.items()},
        }
    tree: dict[str, Any] = {
        "DIRAC": {"VirtualOrganization": VO, "Security": {"UseServerCertificate": "no"}},
        "LocalSite": {"Site": SITE},
        "Registry": {
            "DefaultGroup": f"{VO}_user",
            "VO": {VO: {"VOAdmin": "pilot"}},
            "Users": {"pilot": {"DN": PILOT_DN}},
            "Groups": {
                PILOT_GROUP: {"VO": VO, "Users": "pilot", "Properties": "GenericPilot"},
                f"{VO}_user": {"VO": VO, "Users": "pilot", "Properties": "NormalUser"},
                # the admin DIRAC's dirac-admin-debug-ce wants for non-SSH CE types
                f"{VO}_admin": {"VO": VO, "Users": "pilot", "Properties": "FullDelegation"},
            },
        },
        "Operations": {
            "Defaults": {
                "Pilot": {"GenericPilotGroup": PILOT_GROUP, "GenericPilotDN": PILOT_DN},
                "MonitoringBackends": {"Default": "None"},
            }
        },
        "Resources": {"Sites": {"DIRAC": {SITE: {"VO": VO, "CE": list(ces), "CEs": ces}}}},
        "Systems": {"WorkloadManagement": {"Agents": {k: dict(v) for k, v in AGENTS.items()}}},
    }
    return render_cfg(tree)


_VALUE = re.compile(r"^[^\n{}#]*$")
_KEY = re.compile(r"^[^\s{}=#]+$")


def render_cfg(tree: Mapping[str, Any], indent: str = "") -> str:
    """DIRAC's CFG syntax (what ``diraccfg.CFG.loadFromBuffer`` reads) for a nested mapping."""
    lines: list[str] = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            lines += [
                f"{indent}{key}",
                f"{indent}{{",
                render_cfg(value, indent + "  "),
                f"{indent}}}",
            ]
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        if not _VALUE.match(text) or not _KEY.match(str(key)):
            raise ValueError(f"{key}: {text!r} cannot be written as a CS value")
        lines.append(f"{indent}{key} = {text}")
    return "\n".join(line for line in lines if line)
