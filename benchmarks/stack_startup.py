"""How long until the Slurm stack is usable: cold (nothing cached) and warm (image cached).

Why it matters: every CI job and every `just e2e` pays this before the first test. Targets:
warm <= 30 s, cold <= 6 min. "Cold" forces a fresh debootstrap of the base and a no-cache image
build, so the figure holds on a brand-new machine; "warm" is a fresh stack from the cached
image; "reuse" is `up()` finding the stack already running (what xdist workers do).

Uses its own stack name, so a shared running stack is not disturbed (a cold run re-tags the
stack image; running containers keep the old one).

Usage: python benchmarks/stack_startup.py [--variant bookworm] [--warm-runs 3] [--skip-cold]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import engine
from harness.cluster import Cluster
from harness.config import image_tag, load_variants
from harness.image import BASE_REPOSITORY, bootstrap_base, build_stack_image

RESULTS = Path(__file__).resolve().parent / "results" / "stack_startup.json"
TARGETS = {"warm_s": 30.0, "cold_s": 360.0}


def quiet(_: str) -> None:
    pass


def timed_up(cluster: Cluster) -> float:
    t0 = time.perf_counter()
    cluster.up()
    return time.perf_counter() - t0


def timed_down(cluster: Cluster) -> float:
    t0 = time.perf_counter()
    cluster.down()
    return time.perf_counter() - t0


def cold(variant_name: str, name: str) -> dict[str, float]:
    cli = engine.client()
    variant = load_variants()[variant_name]
    for ref in (image_tag(variant), f"{BASE_REPOSITORY}:{variant.suite}"):
        with contextlib.suppress(Exception):
            cli.images.remove(ref, force=True)
    t0 = time.perf_counter()
    base = bootstrap_base(cli, variant.suite, quiet)
    t1 = time.perf_counter()
    build_stack_image(cli, variant, image_tag(variant), base, quiet, nocache=True)
    t2 = time.perf_counter()
    cluster = Cluster(name, variant=variant_name, log=quiet)
    start = timed_up(cluster)
    total = time.perf_counter() - t0
    timed_down(cluster)
    return {
        "debootstrap_import_s": t1 - t0,
        "image_build_s": t2 - t1,
        "start_to_ready_s": start,
        "total_s": total,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default=os.environ.get("SLURM_VARIANT", "bookworm"))
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true", help="only warm and reuse figures")
    parser.add_argument("--name", default="intercede-bench")
    args = parser.parse_args()

    engine.ensure_engine()
    result: dict[str, Any] = {
        "benchmark": "stack_startup",
        "variant": args.variant,
        "slurm_version": load_variants()[args.variant].slurm_version,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "targets": TARGETS,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cluster = Cluster(args.name, variant=args.variant, log=quiet)
    cluster.down()
    if not args.skip_cold:
        print(f"cold run ({args.variant}): debootstrap + no-cache build + start ...", flush=True)
        result["cold"] = cold(args.variant, args.name)
    else:
        cluster.ensure_image()

    warm, downs = [], []
    for i in range(args.warm_runs):
        print(f"warm run {i + 1}/{args.warm_runs} ...", flush=True)
        warm.append(timed_up(cluster))
        if i < args.warm_runs - 1:
            downs.append(timed_down(cluster))
    reuse = timed_up(cluster)
    downs.append(timed_down(cluster))
    result["warm"] = {
        "runs_s": warm,
        "median_s": statistics.median(warm),
        "max_s": max(warm),
    }
    result["reuse_s"] = reuse
    result["down_median_s"] = statistics.median(downs)

    rows = []
    if "cold" in result:
        c = result["cold"]
        rows += [
            ("cold: debootstrap + import", c["debootstrap_import_s"], None),
            ("cold: image build (no cache)", c["image_build_s"], None),
            ("cold: start to ready", c["start_to_ready_s"], None),
            ("cold: total", c["total_s"], TARGETS["cold_s"]),
        ]
    rows += [
        (f"warm: up() to ready (median of {len(warm)})", result["warm"]["median_s"], None),
        ("warm: up() to ready (max)", result["warm"]["max_s"], TARGETS["warm_s"]),
        ("reuse: up() on a running stack", reuse, None),
        ("down() (median)", result["down_median_s"], None),
    ]
    print(f"\nSlurm stack startup ({args.variant}, Slurm {result['slurm_version']})")
    print(f"{'phase':<44} {'seconds':>9}  target")
    ok = True
    for label, value, target in rows:
        verdict = ""
        if target is not None:
            verdict = f"<= {target:.0f} s {'OK' if value <= target else 'MISSED'}"
            ok = ok and value <= target
        print(f"{label:<44} {value:>9.1f}  {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(RESULTS.parent.parent.parent)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
