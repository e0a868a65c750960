"""In-memory stand-ins for the DIRAC *services* the agents call: nothing on the CE path.

DIRAC's services (PilotAgentsDB behind PilotManager, Matcher, ResourceStatus, ProxyManager,
accounting) need MySQL and a running DIRAC server; they are the only things replaced. Each
recorder keeps what it was told, so a scenario checks what DIRAC's agent would have stored.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from harness.dirac._agent import make_proxy

__all__ = ["FakeMatcher", "PilotAgentsDBRecorder", "ProxyManagerStandIn", "install_site_services"]


def _ok(value: Any = None) -> dict[str, Any]:
    from DIRAC import S_OK

    return dict(S_OK(value))


class PilotAgentsDBRecorder:
    """PilotAgentsDB's methods SiteDirector calls, with the same signatures, in memory."""

    def __init__(self) -> None:
        self.pilots: dict[str, dict[str, Any]] = {}
        self.status_calls = 0

    def addPilotReferences(
        self,
        pilotRef: Iterable[str],
        VO: str,
        gridType: str = "DIRAC",
        pilotStampDict: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        for ref in pilotRef:
            self.pilots[ref] = {
                "PilotJobReference": ref,
                "VO": VO,
                "GridType": gridType,
                "PilotStamp": (pilotStampDict or {}).get(ref, ""),
                "Status": "Submitted",
                "LastUpdateTime": now,
                "SubmissionTime": now,
                "AccountingSent": "False",
            }
        return _ok()

    def setPilotStatus(
        self,
        pilotRef: str,
        status: str,
        destination: str | None = None,
        statusReason: str | None = None,
        gridSite: str | None = None,
        queue: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        from DIRAC import S_ERROR

        pilot = self.pilots.get(pilotRef)
        if pilot is None:
            return dict(S_ERROR(f"no pilot {pilotRef}"))
        self.status_calls += 1
        pilot["Status"] = status
        pilot["StatusReason"] = statusReason
        pilot["LastUpdateTime"] = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        for key, value in (
            ("DestinationSite", destination),
            ("GridSite", gridSite),
            ("Queue", queue),
        ):
            if value:
                pilot[key] = value
        return _ok()

    def selectPilots(self, condDict: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        return _ok([ref for ref, pilot in self.pilots.items() if _matches(pilot, condDict)])

    def countPilots(self, condDict: Mapping[str, Any], *_: Any, **__: Any) -> dict[str, Any]:
        return _ok(len(self.selectPilots(condDict)["Value"]))

    def getPilotInfo(self, pilotReference: Iterable[str] | str, **_: Any) -> dict[str, Any]:
        refs = [pilotReference] if isinstance(pilotReference, str) else list(pilotReference)
        return _ok({ref: dict(self.pilots[ref]) for ref in refs if ref in self.pilots})

    def getPilotOutput(self, pilotRef: str) -> dict[str, Any]:
        stored = self.pilots.get(pilotRef, {}).get("Output")
        return _ok(
            {"StdOut": stored[0], "StdErr": stored[1]} if stored else {"StdOut": "", "StdErr": ""}
        )

    def storePilotOutput(self, pilotRef: str, output: str, error: str) -> dict[str, Any]:
        if pilotRef in self.pilots:
            self.pilots[pilotRef]["Output"] = (output, error)
        return _ok()

    def setAccountingFlag(self, pilotRef: str, mark: str = "True") -> dict[str, Any]:
        if pilotRef in self.pilots:
            self.pilots[pilotRef]["AccountingSent"] = mark
        return _ok()


def _matches(pilot: Mapping[str, Any], cond: Mapping[str, Any]) -> bool:
    for key, wanted in cond.items():
        have = pilot.get(key)
        if isinstance(wanted, list | tuple | set):
            if have not in wanted:
                return False
        elif have != wanted:
            return False
    return True


class FakeMatcher:
    """The Matcher's answer SiteDirector sizes a submission with: ``jobs`` waiting jobs of the
    VO's user group, whatever the CE; it records the CE parameters it was sent."""

    def __init__(self, jobs: int, owner_group: str) -> None:
        self.jobs = jobs
        self.owner_group = owner_group
        self.seen: list[dict[str, Any]] = []

    def getMatchingTaskQueues(self, ceDict: Mapping[str, Any]) -> dict[str, Any]:
        self.seen.append(dict(ceDict))
        return _ok({1: {"OwnerGroup": self.owner_group, "Jobs": self.jobs}})


class ProxyManagerStandIn:
    """``gProxyManager``'s calls the agents make, answered with one real DIRAC proxy."""

    def __init__(self) -> None:
        self.proxy = make_proxy()
        self.calls: list[str] = []

    def getPilotProxyFromDIRACGroup(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.calls.append("getPilotProxyFromDIRACGroup")
        return _ok(self.proxy)

    def getPilotProxyFromVOMSGroup(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.calls.append("getPilotProxyFromVOMSGroup")
        return _ok(self.proxy)

    def downloadProxy(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.calls.append("downloadProxy")
        return _ok(self.proxy)

    def userHasProxy(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.calls.append("userHasProxy")
        return _ok(True)


def install_site_services(module: Any, proxies: ProxyManagerStandIn) -> None:
    """Point an agent module's service handles (site mask, resource status, proxy manager) at
    stand-ins: every site and CE usable, every proxy request answered by ``proxies``."""
    from DIRAC import S_OK

    def usable_sites(siteNames: Iterable[str] | None = None, *_: Any, **__: Any) -> Any:
        from DIRAC import gConfig

        sites = gConfig.getSections("/Resources/Sites/DIRAC")["Value"]
        return S_OK([s for s in sites if not siteNames or s in siteNames])

    def element_status(names: Iterable[str], *_: Any, **__: Any) -> Any:
        return S_OK({name: {"all": "Active"} for name in names})

    module.SiteStatus.getUsableSites = lambda self, *a, **k: usable_sites(*a, **k)
    module.ResourceStatus.getElementStatus = lambda self, *a, **k: element_status(*a, **k)
    for name in (
        "getPilotProxyFromDIRACGroup",
        "getPilotProxyFromVOMSGroup",
        "downloadProxy",
        "userHasProxy",
    ):
        if hasattr(module, "gProxyManager"):
            setattr(module.gProxyManager, name, getattr(proxies, name))
