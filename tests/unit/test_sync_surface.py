"""Every async protocol method has its sync counterpart, independently of the generator check.

This reads the live modules, not the generator's output text: if ``protocols.py`` gains a
method and nobody regenerates, this fails even where ``just lint`` was not run.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import intercede
import intercede.sync
from intercede import protocols
from intercede.sync import _generated

ASYNC_PROTOCOLS = {
    name: obj
    for name, obj in vars(protocols).items()
    if inspect.isclass(obj) and getattr(obj, "_is_runtime_protocol", False)
}
LIFECYCLE = {"__aenter__": "__enter__", "__aexit__": "__exit__", "aclose": "close"}


def own_async_methods(protocol: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(protocol).items()
        if inspect.iscoroutinefunction(member)
    }


METHODS = [
    (name, method)
    for name, protocol in ASYNC_PROTOCOLS.items()
    for method in own_async_methods(protocol)
]


def test_the_contract_has_the_operations_the_brief_lists() -> None:
    operations = {method for name, method in METHODS if not name.startswith("Async")}
    assert operations == {
        "submit",
        "get_status",
        "get_output",
        "kill",
        "purge",
        "get_diagnostics",
        "counts",
        "explain",
        "cleanup_batch",  # issue 13: what a submit in doubt left, removed by batch id
    }


@pytest.mark.parametrize("protocol_name", sorted(ASYNC_PROTOCOLS))
def test_every_protocol_has_a_runtime_checkable_twin(protocol_name: str) -> None:
    twin_name = protocol_name.removeprefix("Async")
    twin = getattr(intercede.sync, twin_name)
    assert getattr(twin, "_is_runtime_protocol", False)
    assert twin_name in intercede.sync.__all__
    bases = {b.__name__ for b in ASYNC_PROTOCOLS[protocol_name].__bases__} - {"Protocol"}
    assert {b.__name__ for b in twin.__bases__} - {"Protocol"} == {
        b.removeprefix("Async") for b in bases
    }


@pytest.mark.parametrize(("protocol_name", "method_name"), METHODS)
def test_every_async_method_has_a_sync_counterpart(protocol_name: str, method_name: str) -> None:
    async_method = getattr(ASYNC_PROTOCOLS[protocol_name], method_name)
    twin = getattr(intercede.sync, protocol_name.removeprefix("Async"))
    sync_name = LIFECYCLE.get(method_name, method_name)
    sync_method = getattr(twin, sync_name, None)
    assert sync_method is not None, f"intercede.sync.{twin.__name__} has no {sync_name}"
    assert not inspect.iscoroutinefunction(sync_method)
    async_sig = inspect.signature(async_method)
    sync_sig = inspect.signature(sync_method)
    assert sync_sig.return_annotation == async_sig.return_annotation
    assert inspect.getdoc(sync_method) == inspect.getdoc(async_method)
    if sync_name in LIFECYCLE.values():
        assert sync_sig == async_sig
        return
    *same, timeout = sync_sig.parameters.values()
    assert same == list(async_sig.parameters.values())
    assert timeout.name == "timeout"
    assert timeout.kind is inspect.Parameter.KEYWORD_ONLY
    assert timeout.default is None
    assert timeout.annotation == "float | None"
    # The facade implements it with the same signature, in the mixin for that capability.
    facade_method = next(
        getattr(mixin, method_name)
        for async_protocol, _twin, mixin in _generated.CAPABILITIES
        if method_name in vars(mixin)
    )
    assert inspect.signature(facade_method) == sync_sig
    assert inspect.getdoc(facade_method) == inspect.getdoc(async_method)


def test_every_capability_pairs_an_async_protocol_with_its_twin() -> None:
    pairs = {(a.__name__, s.__name__) for a, s, _mixin in _generated.CAPABILITIES}
    with_methods = {n for n, p in ASYNC_PROTOCOLS.items() if own_async_methods(p)}
    assert pairs == {(n, n) for n in with_methods if not n.startswith("Async")}


def test_the_public_module_says_what_it_exports() -> None:
    for name in intercede.sync.__all__:
        assert getattr(intercede.sync, name) is not None
    assert set(intercede.sync.__all__) >= {
        "Submitter",
        "StatusReporter",
        "JobBackend",
        "OutputRetriever",
        "Killable",
        "Purgeable",
        "Diagnosable",
        "LoadReporter",
        "backend",
        "wrap",
    }
