"""The batch backend: a scheduler (Slurm) reached through a transport (SSH or local).

Internal: callers get a ``BatchBackend`` from ``intercede.backend(config)``, never from here.
The split is by job: ``transport`` moves bytes and runs argv, ``slurm`` builds commands and
parses replies (pure functions, unit-tested on recorded output), ``staging``/``collect`` build
and unpack the tar streams, ``layout`` knows where a job lives, ``backend`` composes them.
"""

from __future__ import annotations

__all__: list[str] = []
