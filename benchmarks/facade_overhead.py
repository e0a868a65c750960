"""Per-call cost of the sync facade against awaiting the same coroutine directly.

An in-memory fake backend answers at once, so what is measured is the hand-over: caller thread
-> facade loop thread -> caller thread. In the same run, for comparison, the two runtimes the
ADR weighed: anyio's ``BlockingPortal.call`` and ``asyncio.run_coroutine_threadsafe`` with a
``concurrent.futures.Future``. Single thread and 16 threads (SiteDirector's one-per-queue).

    python benchmarks/facade_overhead.py [--calls 20000] [--threads 16]

Prints a table and writes ``benchmarks/results/facade_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import anyio.from_thread

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import intercede.sync  # noqa: E402
from intercede import CopyVars, JobHandle, JobID, JobStatus, Submission, SubmissionSpec  # noqa: E402

TARGET_OVERHEAD_US = 100.0
TARGET_CALLS_PER_S = 10_000.0
HANDLES = [JobHandle(backend="fake", resource="mem", id=str(i)) for i in range(10)]
ANSWER = {h.id: JobStatus.RUNNING for h in HANDLES}


class InMemory:
    """A JobBackend whose status call answers from memory without yielding to the loop."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def submit(
        self, spec: SubmissionSpec, copies: int | Sequence[CopyVars] = 1
    ) -> Submission:
        return Submission(handles={})

    async def get_status(self, handles: Sequence[JobHandle]) -> Mapping[JobID, JobStatus]:
        return ANSWER


def per_call_sync(call: Callable[[], object], n: int) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        call()
        samples.append((clock() - start) / 1000)
    return samples


def per_call_direct(n: int) -> list[float]:
    backend = InMemory()

    async def main() -> list[float]:
        samples = []
        clock = time.perf_counter_ns
        for _ in range(n):
            start = clock()
            await backend.get_status(HANDLES)
            samples.append((clock() - start) / 1000)
        return samples

    return asyncio.run(main())


class Runtimes:
    """The three ways to run a coroutine on a loop owned by another thread, set up once."""

    def __init__(self) -> None:
        self.facade = intercede.sync.wrap(InMemory())
        self.portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal = self.portal_cm.__enter__()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.backend = InMemory()

    def calls(self) -> dict[str, Callable[[], object]]:
        backend, loop, portal, facade = self.backend, self.loop, self.portal, self.facade
        return {
            "facade (intercede.sync)": lambda: facade.get_status(HANDLES),
            "anyio BlockingPortal.call": lambda: portal.call(backend.get_status, HANDLES),
            "run_coroutine_threadsafe": lambda: asyncio.run_coroutine_threadsafe(
                backend.get_status(HANDLES), loop
            ).result(),
        }

    def close(self) -> None:
        self.facade.close()
        self.portal_cm.__exit__(None, None, None)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def threaded(call: Callable[[], object], threads: int, per_thread: int) -> dict[str, float]:
    samples: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        barrier.wait()
        samples[i] = per_call_sync(call, per_thread)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    flat = [s for per in samples for s in per]
    return {
        "median_us": statistics.median(flat),
        "calls_per_s": threads * per_thread / elapsed,
    }


def measure(calls: int, threads: int) -> dict[str, Any]:
    warm = max(calls // 10, 100)
    per_call_direct(warm)
    direct = per_call_direct(calls)
    direct_median = statistics.median(direct)
    rows: dict[str, Any] = {
        "await directly": {
            "single_median_us": direct_median,
            "single_p90_us": statistics.quantiles(direct, n=10)[-1],
            "single_calls_per_s": calls / (sum(direct) / 1e6),
            "overhead_us": 0.0,
        }
    }
    runtimes = Runtimes()
    try:
        for name, call in runtimes.calls().items():
            per_call_sync(call, warm)
            start = time.perf_counter()
            single = per_call_sync(call, calls)
            elapsed = time.perf_counter() - start
            median = statistics.median(single)
            many = threaded(call, threads, max(calls // threads, 50))
            rows[name] = {
                "single_median_us": median,
                "single_p90_us": statistics.quantiles(single, n=10)[-1],
                "single_calls_per_s": calls / elapsed,
                "overhead_us": median - direct_median,
                "threads_median_us": many["median_us"],
                "threads_calls_per_s": many["calls_per_s"],
            }
    finally:
        runtimes.close()
    facade = rows["facade (intercede.sync)"]
    return {
        "calls": calls,
        "threads": threads,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpu",
        "targets": {
            "overhead_us_max": TARGET_OVERHEAD_US,
            "single_calls_per_s_min": TARGET_CALLS_PER_S,
        },
        "meets_targets": facade["overhead_us"] <= TARGET_OVERHEAD_US
        and facade["single_calls_per_s"] >= TARGET_CALLS_PER_S,
        "results": rows,
    }


def table(report: dict[str, Any]) -> str:
    threads = report["threads"]
    lines = [
        f"| runtime | median µs/call | p90 µs | overhead µs | calls/s (1 thread) "
        f"| median µs ({threads} threads) | calls/s ({threads} threads) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["results"].items():
        lines.append(
            f"| {name} | {row['single_median_us']:.1f} | {row['single_p90_us']:.1f} "
            f"| {row['overhead_us']:.1f} | {row['single_calls_per_s']:,.0f} "
            + (
                f"| {row['threads_median_us']:.1f} | {row['threads_calls_per_s']:,.0f} |"
                if "threads_median_us" in row
                else "| – | – |"
            )
        )
    facade = report["results"]["facade (intercede.sync)"]
    ratios = ", ".join(
        f"{name}: {row['single_median_us'] / facade['single_median_us']:.2f}x"
        for name, row in report["results"].items()
        if name != "facade (intercede.sync)"
    )
    lines += [
        "",
        f"median per-call time relative to the facade: {ratios}",
        f"targets (overhead <= {TARGET_OVERHEAD_US:.0f} µs, >= {TARGET_CALLS_PER_S:,.0f} "
        f"calls/s single threaded): {'met' if report['meets_targets'] else 'MISSED'}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/facade_overhead.json"
    )
    options = parser.parse_args(argv)
    report = measure(options.calls, options.threads)
    print(table(report))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    shown = options.out.relative_to(ROOT) if options.out.is_relative_to(ROOT) else options.out
    print(f"wrote {shown}")
    return 0 if report["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
