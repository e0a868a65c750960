"""Command-line tools shipped with interCEde (console scripts declared in ``pyproject.toml``).

Internal: the only stable surface is each tool's command line, never these modules.
"""

from __future__ import annotations

__all__: list[str] = []
