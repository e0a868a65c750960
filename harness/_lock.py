"""One advisory file lock for every harness entry point that starts or removes something.

``python -m harness up|down|e2e``, the pytest fixture (in every xdist worker) and engine
bootstrap all race on shared resources; a ``flock`` on a well-known file serialises them
across processes and dies with its holder, so a crashed run never leaves a stale lock.
Not re-entrant: the same process must not take the same lock twice (it would wait forever).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

__all__ = ["flock", "stack_lock", "stack_lock_path", "stack_owner_path"]


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stack_lock_path(name: str, root: Path | None = None) -> Path:
    """``.intercede/<stack>.lock`` in the checkout: every process of this checkout finds it."""
    if root is None:
        from harness.config import REPO_ROOT

        root = REPO_ROOT
    return root / ".intercede" / f"{name}.lock"


def stack_lock(name: str, root: Path | None = None) -> contextlib.AbstractContextManager[None]:
    """The lock around ``up()``/``down()`` of stack ``name``."""
    return flock(stack_lock_path(name, root))


def stack_owner_path(name: str, root: Path | None = None) -> Path:
    """``.intercede/<stack>.session``: who started the stack (a pytest session or an e2e run),
    so only that run tears it down. Read and written under :func:`stack_lock`."""
    return stack_lock_path(name, root).with_suffix(".session")
