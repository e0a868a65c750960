"""What every facade has whatever its backend can do: the loop, the lifecycle, dispatch.

The generated mixins (``_generated.py``) derive from :class:`FacadeCore` and add one method per
protocol method; this class owns everything that is not generated.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from ..protocols import JobBackend
from ._runtime import LoopThread, running_loop_library

__all__ = ["FacadeCore", "run_helper"]

T = TypeVar("T")


def _shutdown(runtime: LoopThread, backend: JobBackend) -> None:
    """The finaliser: ``close()`` runs it too, but the garbage collector may run it anywhere.

    Inside a running event loop (a facade dropped in async code, or collected on its own loop
    thread) waiting up to the close grace plus ``aclose()`` would stall that loop, so the close
    is handed to a short-lived daemon thread instead.
    """
    if runtime.on_loop_thread() or running_loop_library() is not None:
        runtime.close_in_background(backend.aclose)
    else:
        runtime.close(backend.aclose)


class FacadeCore:
    """A sync object over one async backend, running it on one long-lived loop thread.

    Build it with ``intercede.sync.backend()`` or ``intercede.sync.wrap()``, which pick the
    subclass whose methods match the backend's capabilities.
    """

    def __init__(self, backend: JobBackend, runtime: LoopThread) -> None:
        self._backend: JobBackend = backend
        self._runtime = runtime
        # Closes the backend and stops the thread when the facade is garbage collected or the
        # interpreter exits, without keeping the facade itself alive.
        self._finalizer = weakref.finalize(self, _shutdown, runtime, backend)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called, or the facade cannot run anymore (inherited by a
        forked child, or its loop thread ended): every further call raises
        ``BackendClosedError``."""
        return self._runtime.closed

    def close(self) -> None:
        """Close the async backend on its loop (``aclose()``), then stop the loop's thread.

        Idempotent and thread-safe. New calls are refused at once; calls already running in
        other threads get up to ``CLOSE_GRACE_S`` (10 s) to finish, so a submit in flight
        returns its handles, and the ones still running then end with ``BackendClosedError``
        before the backend's connection is closed.
        """
        self._runtime.refuse_running_loop("close")
        self._finalizer()
        self._runtime.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__qualname__} over {type(self._backend).__qualname__}, {state}>"

    def interrupt(self) -> None:
        """Cancel every call in flight on this facade, from any thread, without waiting.

        Each interrupted caller raises ``OperationCancelledError`` once its coroutine has
        unwound; calls made afterwards run normally, so the caller can still clean up (kill
        and purge what it submitted) over the same connection. This is how a supervisor (a
        Ctrl-C handler, an agent being stopped) stops worker threads blocked in the facade.
        """
        self._runtime.interrupt()

    def _dispatch(self, what: str, factory: Callable[[], Awaitable[T]], timeout: float | None) -> T:
        return self._runtime.call(what, factory, timeout)


def run_helper(facade: object, what: str, factory: Callable[[Any], Awaitable[T]]) -> T:
    """Run an async helper (``intercede.waiting``) on ``facade``'s loop over its backend: the
    body of every generated helper twin, so it behaves as one facade call (Ctrl-C cancels it,
    ``interrupt()`` too)."""
    if not isinstance(facade, FacadeCore):
        raise TypeError(
            f"{what}() takes a facade from intercede.sync.backend() or intercede.sync.wrap(), "
            f"not {type(facade).__qualname__}"
        )
    backend = facade._backend
    return facade._dispatch(what, lambda: factory(backend), None)
