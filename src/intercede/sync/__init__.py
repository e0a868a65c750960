"""The sync facade: interCEde's async contract for synchronous callers (DIRAC's agents).

Use it, don't subclass it::

    import intercede
    import intercede.sync

    queues = intercede.load_config("queues.toml")
    with intercede.sync.backend(queues.queues["main"], queues.credentials()) as ce:
        submission = ce.submit(spec, copies=10)
        statuses = ce.get_status(list(submission.handles.values()), timeout=60)
        if isinstance(ce, intercede.sync.Killable):
            ce.kill(list(submission.handles.values()))

Every method is the async protocol's, generated from ``intercede/protocols.py`` (same
parameters, results and exceptions) plus a keyword-only ``timeout``. One facade runs one event
loop in one daemon thread for its whole life, so connections are reused across calls; it is
safe to share between threads, but not across ``fork()`` (build a new one in the child).
Calling it from a thread whose event loop is running raises ``intercede.RunningLoopError``:
await the async API there instead.
"""

from __future__ import annotations

from . import _generated
from ._facade import Facade, backend, wrap
from ._generated import *  # noqa: F403 - every twin, whatever protocols.py declares

__all__ = ["Facade", "backend", "wrap", *_generated.__all__]
