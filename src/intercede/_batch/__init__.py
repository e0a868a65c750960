"""The batch backend: a scheduler (Slurm) reached through a transport (SSH or local).

Internal: callers get a ``BatchBackend`` from ``intercede.backend(config)``, never from here.
The split is by job: ``transport`` moves bytes and runs argv; ``scheduler`` is the seam for
what differs between batch systems and ``slurm`` is Slurm behind it (commands and pure reply
parsers, unit-tested on recorded output); ``remote`` loads the shell scripts (``*.sh`` beside
it, shellchecked) and reads their ``@@`` replies; ``staging``/``collect`` build and unpack the
tar streams; ``layout`` knows where a job lives; ``backend`` composes them.
"""

from __future__ import annotations

__all__: list[str] = []
