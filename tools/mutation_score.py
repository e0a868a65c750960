"""Judge a mutmut run: the kill rate and the survivors, against a floor.

``mutmut export-cicd-stats`` writes the counts (``mutants/mutmut-cicd-stats.json``); this reads
them, prints the kill rate ((killed + timeout) / (total - skipped), mutmut's own score) and
fails below ``--floor``. Survivors the docs accept (``docs/mutation.md``, one mutant name per
list item in backticks) are reported as accepted, the rest as new.

    python -m tools.mutation_score [--stats PATH] [--floor 85] [--survivors-file PATH]
                                   [--accepted-doc PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["accepted_survivors", "kill_rate", "main"]

_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATS = Path("mutants/mutmut-cicd-stats.json")
ACCEPTED_DOC = _ROOT / "docs" / "mutation.md"


def kill_rate(stats: dict[str, int]) -> float:
    """mutmut's score in percent; a run that tested nothing scores 0."""
    tested = int(stats.get("total", 0)) - int(stats.get("skipped", 0))
    if tested <= 0:
        return 0.0
    return 100.0 * (int(stats.get("killed", 0)) + int(stats.get("timeout", 0))) / tested


def accepted_survivors(doc: str) -> set[str]:
    """Mutant names listed as accepted in the docs: ``- `name` ...`` under any heading."""
    return set(re.findall(r"^- `([\w.]+__mutmut_\d+)`", doc, flags=re.MULTILINE))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", type=Path, default=DEFAULT_STATS)
    parser.add_argument("--floor", type=float, default=85.0)
    parser.add_argument("--accepted-doc", type=Path, default=ACCEPTED_DOC)
    parser.add_argument(
        "--survivors-file",
        type=Path,
        help="`mutmut results` output: one '<name>: survived' line per survivor",
    )
    options = parser.parse_args(argv)
    stats = json.loads(options.stats.read_text())
    rate = kill_rate(stats)
    print(
        f"mutants: {stats.get('total', 0)} total, {stats.get('killed', 0)} killed, "
        f"{stats.get('timeout', 0)} timed out, {stats.get('survived', 0)} survived, "
        f"{stats.get('no_tests', 0)} without tests, {stats.get('skipped', 0)} skipped"
    )
    print(f"kill rate: {rate:.1f}% (floor {options.floor:g}%)")
    if options.survivors_file is not None:
        accepted = accepted_survivors(options.accepted_doc.read_text())
        survivors = re.findall(
            r"^\s*([\w.]+__mutmut_\d+): survived",
            options.survivors_file.read_text(),
            flags=re.MULTILINE,
        )
        new = [name for name in survivors if name not in accepted]
        print(f"survivors: {len(survivors)} ({len(survivors) - len(new)} accepted in the docs)")
        for name in new:
            print(f"  new survivor: {name}")
    return 0 if rate >= options.floor else 1


if __name__ == "__main__":
    sys.exit(main())
