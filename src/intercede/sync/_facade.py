"""Build facades whose capabilities are exactly their backend's.

``isinstance(facade, intercede.sync.Killable)`` must answer what
``isinstance(backend, intercede.Killable)`` answers, so a facade cannot simply have every
method. Each capability's methods live in a generated mixin; a facade's class is ``Facade``
plus the mixins of the optional protocols its backend satisfies, built once per combination.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, cast

from typing_extensions import get_protocol_members

from .. import registry
from ..config import LocalBatchConfig, SSHBatchConfig
from ..credentials import CredentialProvider
from ..protocols import JobBackend as AsyncJobBackend
from ._core import FacadeCore
from ._generated import CAPABILITIES, JobBackend, _JobBackendMethods
from ._runtime import LoopThread

__all__ = ["Facade", "backend", "wrap"]


class Facade(_JobBackendMethods):
    """The sync facade: every ``JobBackend`` method, blocking, plus ``close()``.

    Use it, don't subclass it; get one from ``intercede.sync.backend()`` or
    ``intercede.sync.wrap()``. Optional capabilities (``kill``, ``get_output``, ...) are present
    exactly when the async backend has them: narrow with ``isinstance(facade,
    intercede.sync.Killable)`` before calling them, as with the async protocols.
    """


_: type[JobBackend] = Facade  # the type checker proves Facade satisfies the sync JobBackend

_classes: dict[tuple[type[FacadeCore], ...], type[Facade]] = {}
_classes_lock = threading.Lock()


def _facade_class(async_backend: object) -> type[Facade]:
    mixins = tuple(
        mixin
        for async_protocol, _twin, mixin in CAPABILITIES
        if isinstance(async_backend, async_protocol) and not issubclass(Facade, mixin)
    )
    if not mixins:
        return Facade
    with _classes_lock:
        cls = _classes.get(mixins)
        if cls is None:
            names = ", ".join(m.__name__.removeprefix("_").removesuffix("Methods") for m in mixins)
            cls = cast("type[Facade]", type(f"Facade[{names}]", (Facade, *mixins), {}))
            cls.__module__ = "intercede.sync"
            _classes[mixins] = cls
        return cls


# Read from the protocol itself (typing.get_protocol_members from Python 3.13), so the error
# message cannot drift from the contract.
_BACKEND_MEMBERS = sorted(get_protocol_members(AsyncJobBackend))


def _missing(candidate: object) -> list[str]:
    return [name for name in _BACKEND_MEMBERS if not callable(getattr(candidate, name, None))]


def wrap(async_backend: AsyncJobBackend) -> Facade:
    """A sync facade over an async backend that has not run on another event loop yet.

    The facade owns the backend from now on: its ``close()`` closes the backend.
    """
    if isinstance(async_backend, FacadeCore):
        raise TypeError("wrap() takes an async backend; this is already a sync facade")
    if not isinstance(async_backend, AsyncJobBackend):
        raise TypeError(
            f"wrap() needs an intercede.JobBackend; {type(async_backend).__qualname__} lacks "
            f"{', '.join(_missing(async_backend))}"
        )
    runtime = LoopThread(type(async_backend).__qualname__)
    return _facade_class(async_backend)(async_backend, runtime)


def backend(
    config: Mapping[str, Any] | SSHBatchConfig | LocalBatchConfig,
    credentials: CredentialProvider | None = None,
) -> Facade:
    """Build the backend ``config`` names (``intercede.backend``) and wrap it.

    The async backend is built on the facade's loop thread, so anything it binds to a loop at
    construction binds to the loop that will run it. Config errors raise
    ``ConfigurationError`` naming the field, exactly as the async registry does.
    """
    runtime = LoopThread("backend")

    async def build() -> AsyncJobBackend:
        return registry.backend(config, credentials)

    try:
        built = runtime.call("backend", build)
    except BaseException:
        runtime.close()
        raise
    runtime.relabel(type(built).__qualname__)
    return _facade_class(built)(built, runtime)
