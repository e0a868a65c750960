"""The executables the debug-CE run submits when the operator gives none.

They are plain POSIX shell so they run on any batch node (no Python needed at the site).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SLEEP_SECONDS", "write_probe_script", "write_sleep_script"]

SLEEP_SECONDS = 600
"""Long enough that the kill check always catches the job running."""

_PROBE = """\
#!/bin/sh
# interCEde debug-CE probe: proves the job ran, where, and that it saw its stamp.
echo "hostname: $(hostname)"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "DIRAC_PILOT_STAMP=${DIRAC_PILOT_STAMP}"
"""

_SLEEP = f"""\
#!/bin/sh
# interCEde debug-CE kill target: runs until cancelled.
echo "sleeping, stamp ${{DIRAC_PILOT_STAMP}}"
sleep {SLEEP_SECONDS}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def write_probe_script(directory: Path) -> Path:
    return _write(directory / "debug-ce-probe.sh", _PROBE)


def write_sleep_script(directory: Path) -> Path:
    return _write(directory / "debug-ce-sleep.sh", _SLEEP)
