"""``python -m harness pins``: show, and with ``--write`` refresh, a variant's Slurm/munge pins.

The pin logic lives in :mod:`harness.pins`; this command adds what it needs from the engine
and the image builder (the variant's own base image answers what the suite offers now). Kept
apart so that the image builder can use the pin messages without the two importing each other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.config import STACK_DIR, load_variants
from harness.engine import client, ensure_engine
from harness.image import resolve_base
from harness.pins import available_versions, refresh_command, refresh_pins

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant",
        action="append",
        help="variant to check (repeatable; default: every variant in variants.toml)",
    )
    parser.add_argument(
        "--write", action="store_true", help="write what the suite offers now into variants.toml"
    )


def run(args: argparse.Namespace, path: Path | None = None) -> int:
    target = path or STACK_DIR / "variants.toml"
    variants = load_variants(target)
    names = args.variant or list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        print(f"error: unknown variant(s) {unknown}; known: {sorted(variants)}", file=sys.stderr)
        return 2
    ensure_engine()
    cli = client()
    text = target.read_text()
    stale = False
    for name in names:
        variant = variants[name]
        offered = available_versions(cli, resolve_base(cli, variant))
        new = {
            "slurm_version": offered.get("slurmd", ""),
            "munge_version": offered.get("munge", ""),
        }
        if not all(new.values()):
            print(f"error: {name}: the suite offers no slurmd or munge: {offered}", file=sys.stderr)
            return 1
        old = {"slurm_version": variant.slurm_version, "munge_version": variant.munge_version}
        for field in new:
            verdict = "ok" if new[field] == old[field] else f"now {new[field]}"
            print(f"{name}: {field} = {old[field]!r}: {verdict}")
        if new != old:
            stale = True
            text = refresh_pins(text, name, new)
    if stale and args.write:
        target.write_text(text)
        print(f"wrote {target}; the stack image tag changes with it, so the next up rebuilds")
        return 0
    if stale:
        print(f"pins are stale: rerun with --write ({refresh_command('<variant>')})")
        return 1
    return 0
