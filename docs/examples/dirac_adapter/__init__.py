"""A reference DIRAC-side adapter over interCEde's sync facade.

It lives in interCEde's docs, not its wheel: DIRAC vocabulary (``S_OK``/``S_ERROR``,
``PilotStampDict``) stays out of the library. It proves the migration doc
(``docs/migration/dirac.md``) is implementable and is exercised against a real Slurm cluster.
"""

from __future__ import annotations

from .adapter import STAMP_VARIABLE, InterCEdeComputingElement, getCE, split_reference
from .parameters import DIRAC_KEY_FOR_FIELD, DIRAC_KEY_FOR_RESOURCE, IGNORED_KEYS, translate
from .returns import S_ERROR, S_OK
from .slots import available_slots

__all__ = [
    "DIRAC_KEY_FOR_FIELD",
    "DIRAC_KEY_FOR_RESOURCE",
    "IGNORED_KEYS",
    "STAMP_VARIABLE",
    "S_ERROR",
    "S_OK",
    "InterCEdeComputingElement",
    "available_slots",
    "getCE",
    "split_reference",
    "translate",
]
