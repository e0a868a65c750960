"""Bulk operations against the resource's own cost and against the peers, in one run.

For N = 200, 1000, 5000 copies (each with its own environment and secret): ``submit``, status
of the live (held) jobs, ``kill``, ``get_output`` (3 files per job) and ``purge``, measured
for interCEde's batch backend over SSH (from the host) and over its local transport (inside the
login node), next to the floor: what the resource alone costs for the same request on the
same transport (``sbatch --array`` chunked at ``MaxArraySize``, ``squeue -h -r``, ``scancel``,
a bare ``tar -c`` and ``rm -rf`` of the same files; see ``benchmarks/peers/cycle.py``). Never
our own layout: a floor that unpacks our per-copy files would hide what the layout costs.

Peers in the same run, each measured the way its users drive it:

- DIRAC's ``SSHComputingElement`` with its ``SLURM`` batch system, the real ``dirac`` package,
  from the host over SSH (``benchmarks/peers/dirac_ssh_ce.py``, run with ``--dirac-python``);
- PSI/J and submitit, from PyPI, locally on the login node (``benchmarks/peers/login_node.py``
  in a venv there), against interCEde's local transport and the local floor.

Peers run for N <= ``--peer-max-n`` (default 1000: DIRAC's kill is one ``scancel`` per pilot);
the table says what was not measured and why. Also: interCEde's client peak RSS per N (the SSH
cycle runs in a child process; VmHWM), round trips per operation (exactly what the design
says, constant in N, or the run fails) and the issue-11 targets, printed as met or missed.

Each cell is the median of ``--repeat`` rounds (3) for N <= ``--repeat-max-n`` (1000), one
round above; the peers run ``--peer-repeat`` rounds (1): they are 10x to 1000x off, or close
enough that the table says so.

Slurm's ``MaxJobCount`` (10,000 on the harness cluster) counts array tasks, and cancelled ones
linger ``MinJobAge`` (300 s): before every submission the run waits, untimed, until the new
jobs fit, so N = 5000 waits a few minutes between tools.

    python benchmarks/bulk_ops.py [--stack NAME] [--sizes 200,1000,5000] [--peer-max-n 1000]
                                  [--repeat 3] [--peer-repeat 1] [--dirac-python PATH]
                                  [--no-peers]

Prints one table and writes ``benchmarks/results/bulk_ops.json`` (or ``--results PATH``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# Run as a script (`just bench-bulk`): the harness lives at the repository root.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))

OPS = ("submit", "status", "kill", "get_output", "purge")
COLUMNS = (
    "floor-ssh",
    "intercede-ssh",
    "dirac-ssh-ce",
    "floor-local",
    "intercede-local",
    "psij",
    "submitit",
)
LABELS = {
    "floor-ssh": "floor SSH",
    "intercede-ssh": "interCEde SSH",
    "dirac-ssh-ce": "DIRAC SSH CE",
    "floor-local": "floor local",
    "intercede-local": "interCEde local",
    "psij": "PSI/J",
    "submitit": "submitit",
}
FLOOR_OF = {
    "intercede-ssh": "floor-ssh",
    "dirac-ssh-ce": "floor-ssh",
    "intercede-local": "floor-local",
    "psij": "floor-local",
    "submitit": "floor-local",
}
PEER_OPS = ("submit", "status", "kill")
NO_PEER_OP = "no such operation (output is written in place; clean-up is the user's rm)"
NO_DIRAC_OP = "not measured: one getJobOutput per pilot, no bulk clean-up in the SSH CE"
RSS_LIMIT_MB = 100.0
RESULTS = ROOT / "benchmarks" / "results" / "bulk_ops.json"
WHEELS = (
    "psij-python",
    "submitit",
    "pydantic>=2.7,<3",
    "anyio>=4.4,<5",
    "asyncssh>=2.17,<3",
    "tenacity>=8.5",
    "typing_extensions>=4.12",
    "rich>=13.7",
)


# ------------------------------------------------------------------ the SSH child


def child_ssh(stack: str, n: int) -> dict[str, Any]:
    """interCEde over SSH and the floor over the same connection, in a process of its own so
    its peak RSS is the client's for this N."""
    import anyio
    from cycle import Shell, floor_cycle, intercede_cycle, peak_rss_mb, pilot_spec

    import intercede
    from harness.cluster import Cluster
    from intercede import SSHBatchConfig

    cluster = Cluster(stack)
    loaded = intercede.load_config(cluster.client_config_path)
    base = loaded.queues["main"]
    assert isinstance(base, SSHBatchConfig)
    run_root = f"{cluster.work_root}/bench/{uuid.uuid4().hex[:8]}"
    config = base.model_copy(
        update={"work_root": run_root, "job_name": "bench", "submit_extra": ("--hold",)}
    )

    async def main() -> dict[str, Any]:
        scratch = Path(tempfile.mkdtemp(prefix="bulk-ops-"))
        backend = intercede.backend(config, loaded.credentials())
        async with backend:
            await backend.counts()  # connect (and warm up) outside the measurements
            sh = Shell(backend)
            try:
                ours = await intercede_cycle(backend, pilot_spec(scratch), n, scratch / "out")
                floor = await floor_cycle(sh, n, run_root, run_root)
            finally:
                await sh(f"rm -rf {run_root}")
            connections = backend.transport.connections_opened
        return {
            "intercede": ours,
            "floor": floor,
            "peak_rss_mb": peak_rss_mb(),
            "connections": connections,
        }

    return anyio.run(main)


# ------------------------------------------------------------------ the login node's venv


def stage_login_venv(cluster: Any) -> tuple[str, str]:
    """interCEde's wheel, PSI/J, submitit and their dependencies for the login node's CPython
    (downloaded on the host: the containers may not verify the registry's TLS chain), a venv
    there, and the peer scripts. Returns (python, script dir) on the login node."""
    house = Path(tempfile.mkdtemp(prefix="bench-wheels-"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(house), str(ROOT)], check=True)
    subprocess.run(
        [
            *pip,
            *("download", "-d", str(house), "--only-binary=:all:"),
            *("--platform", "manylinux2014_x86_64", "--python-version", "3.11"),
            *("--implementation", "cp", *WHEELS),
        ],
        check=True,
    )
    stage = f"{cluster.work_root}/bench-peers"
    files = {f"wheelhouse/{p.name}": (p.read_bytes(), 0o644) for p in house.iterdir()}
    for name in ("cycle.py", "login_node.py"):
        files[name] = ((ROOT / "benchmarks" / "peers" / name).read_bytes(), 0o644)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("wheelhouse")  # the submit user's, not the engine's root
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o755, 2000, 2000
        tar.addfile(folder)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 2000, 2000
            tar.addfile(info, io.BytesIO(data))
    _login(cluster, "rm", "-rf", stage)
    _login(cluster, "mkdir", "-p", stage)
    assert cluster.container("login").put_archive(stage, buffer.getvalue())
    _login(cluster, "python3", "-m", "venv", f"{stage}/venv")
    _login(
        cluster,
        *(f"{stage}/venv/bin/pip", "install", "-q", "--no-index"),
        *("--find-links", f"{stage}/wheelhouse", "intercede", "psij-python", "submitit"),
    )
    return f"{stage}/venv/bin/python", stage


def _login(cluster: Any, *argv: str) -> str:
    code, out = cluster.exec("login", list(argv), user=cluster.user)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)[:120]}: exit {code}: {out[-2000:]}")
    return out


def _result(out: str) -> dict[str, Any]:
    line = next(x for x in out.splitlines() if x.startswith("@@result "))
    return dict(json.loads(line.removeprefix("@@result ")))


# ------------------------------------------------------------------ the run


def run_login_tool(cluster: Any, python: str, stage: str, tool: str, n: int) -> dict[str, Any]:
    work = f"{cluster.work_root}/bench-{tool}-{uuid.uuid4().hex[:8]}"
    try:
        return _result(
            _login(cluster, python, f"{stage}/login_node.py", tool, str(n), work, "main")
        )
    finally:
        _login(cluster, "rm", "-rf", work)


def run_dirac(cluster: Any, dirac_python: str, n: int) -> dict[str, Any]:
    from harness.dirac_cs import StackAccess, render_cs

    access = StackAccess.from_client_config(cluster.client_config_path)
    area = f"{cluster.work_root}/bench-dirac-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-dirac-") as tmp:
        cs = Path(tmp, "cs.cfg")
        cs.write_text(
            render_cs(
                access,
                stack=cluster.name,
                ce_type="SSH",
                extra_ce={"SharedArea": area, "SubmitOptions": "--hold"},
            )
        )
        cs_and_n = ["--cs", str(cs), "--n", str(n)]
        try:
            done = subprocess.run(
                [dirac_python, str(ROOT / "benchmarks/peers/dirac_ssh_ce.py"), *cs_and_n],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
        finally:
            _login(cluster, "rm", "-rf", area)
    if done.returncode != 0:
        raise RuntimeError(f"DIRAC run failed: {done.stderr[-3000:]}")
    return _result(done.stdout)


def _child(stack: str, n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child-ssh", str(n), "--stack", stack],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"SSH cycle at N={n} failed: {done.stderr[-3000:]}")
    return _result(done.stdout)


def median_cell(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell from several rounds: the median time per operation, every round's seconds,
    the round trips seen (a set: they must not vary) and the failures added up."""
    cell: dict[str, Any] = {}
    for op, first in rounds[0].items():
        ms = [r[op] for r in rounds]
        cell[op] = {
            **first,
            "s": statistics.median(m["s"] for m in ms),
            "rounds_s": [m["s"] for m in ms],
        }
        if "trips" in first:
            cell[op]["trips"] = sorted({m["trips"] for m in ms})
        for key in ("not_ok", "left"):
            if key in first:
                cell[op][key] = sum(m[key] for m in ms)
    return cell


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from harness.cluster import Cluster

    cluster = Cluster(args.stack)
    cluster.up()
    peers = not args.no_peers
    if peers:
        python, stage = stage_login_venv(cluster)
    cells: dict[str, dict[str, Any]] = {}  # f"{column}|{n}" -> op -> measurement
    notes: dict[str, str] = {}
    extra: dict[str, Any] = {"rss_mb": {}, "connections": {}, "rounds": {}}

    def rounds_of(column: str, n: int, count: int, call: Any) -> list[dict[str, Any]]:
        done = []
        for i in range(count):
            log(f"N={n}: {column}, round {i + 1} of {count}")
            done.append(call())
        extra["rounds"][f"{column}|{n}"] = count
        return done

    for n in args.sizes:
        count = args.repeat if n <= args.repeat_max_n else 1
        ssh = rounds_of("intercede-ssh", n, count, lambda n=n: _child(args.stack, n))
        cells[f"intercede-ssh|{n}"] = median_cell([r["intercede"] for r in ssh])
        cells[f"floor-ssh|{n}"] = median_cell([_floor(r) for r in ssh])
        extra["rss_mb"][str(n)] = round(max(r["peak_rss_mb"] for r in ssh), 1)
        extra["connections"][str(n)] = sorted({r["connections"] for r in ssh})
        if not peers:
            continue
        local = rounds_of(
            "intercede-local",
            n,
            count,
            lambda n=n: run_login_tool(cluster, python, stage, "intercede-local", n),
        )
        cells[f"intercede-local|{n}"] = median_cell([r["intercede"] for r in local])
        cells[f"floor-local|{n}"] = median_cell([_floor(r) for r in local])
        for tool in ("dirac-ssh-ce", "psij", "submitit"):
            if n > args.peer_max_n:
                notes[f"{tool}|{n}"] = f"not measured: N > --peer-max-n {args.peer_max_n}"
                continue

            def once(tool: str = tool, n: int = n) -> dict[str, Any]:
                if tool == "dirac-ssh-ce":
                    return run_dirac(cluster, args.dirac_python, n)
                return run_login_tool(cluster, python, stage, tool, n)

            try:
                cells[f"{tool}|{n}"] = median_cell(
                    rounds_of(tool, n, min(count, args.peer_repeat), once)
                )
            except Exception as exc:
                notes[f"{tool}|{n}"] = f"failed: {str(exc)[-300:]}"
                log(notes[f"{tool}|{n}"])
    slurm = _login(cluster, "sbatch", "--version").strip()
    return {"cells": cells, "notes": notes, "slurm": slurm, **extra}


def _floor(result: dict[str, Any]) -> dict[str, Any]:
    return {op: {"s": s} for op, s in result["floor"].items()}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the table and targets


def _s(cells: dict[str, Any], column: str, n: int, op: str) -> float | None:
    cell = cells.get(f"{column}|{n}", {}).get(op)
    return None if cell is None else float(cell["s"])


def table(data: dict[str, Any], sizes: list[int]) -> list[str]:
    cells, notes = data["cells"], data["notes"]
    lines = [
        "| op | N | " + " | ".join(LABELS[c] for c in COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    footnotes: dict[str, int] = {}
    for op in OPS:
        for n in sizes:
            row = [op, str(n)]
            for column in COLUMNS:
                value = _s(cells, column, n, op)
                if value is None:
                    reason = notes.get(f"{column}|{n}")
                    if reason is None and column in ("dirac-ssh-ce",) and op not in PEER_OPS:
                        reason = NO_DIRAC_OP
                    elif reason is None and column in ("psij", "submitit") and op not in PEER_OPS:
                        reason = NO_PEER_OP
                    reason = reason or "not measured"
                    mark = footnotes.setdefault(reason, len(footnotes) + 1)
                    row.append(f"– [{mark}]")
                    continue
                text = f"{value:.3f}"
                floor = FLOOR_OF.get(column)
                base = _s(cells, floor, n, op) if floor else None
                if base:
                    text += f" ({value / base:.1f}x)"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    for reason, mark in footnotes.items():
        lines.append(f"\n[{mark}] {reason}")
    return lines


def hows(data: dict[str, Any]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    for key, cell in data["cells"].items():
        column = key.split("|")[0]
        for op, m in cell.items():
            if isinstance(m, dict) and "how" in m:
                seen[(column, op)] = m["how"]
    return [f"- {LABELS[c]} {op}: {how}" for (c, op), how in sorted(seen.items())]


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    cells = data["cells"]

    def s(column: str, n: int, op: str) -> float | None:
        return _s(cells, column, n, op)

    out: list[dict[str, Any]] = []

    def target(name: str, value: float | None, limit: float | None, unit: str = "s") -> None:
        met = None if value is None or limit is None else value <= limit
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "met": met})

    for transport in ("ssh", "local"):
        ours, floor = f"intercede-{transport}", f"floor-{transport}"
        f_sub = s(floor, 1000, "submit")
        target(f"{transport}: submit 1000 <= 5x sbatch --array floor", s(ours, 1000, "submit"),
               None if f_sub is None else 5 * f_sub)  # fmt: skip
        s1000 = s(ours, 1000, "submit")
        target(f"{transport}: submit 5000 <= 3x submit 1000", s(ours, 5000, "submit"),
               None if s1000 is None else 3 * s1000)  # fmt: skip
        f_status = s(floor, 1000, "status")
        target(f"{transport}: status 1000 live <= 3x squeue floor", s(ours, 1000, "status"),
               None if f_status is None else 3 * f_status)  # fmt: skip
        f_kill, status = s(floor, 1000, "kill"), s(ours, 1000, "status")
        target(f"{transport}: kill 1000 <= 3x scancel floor + one status", s(ours, 1000, "kill"),
               None if f_kill is None or status is None else 3 * f_kill + status)  # fmt: skip
        target(f"{transport}: purge 5000 <= 1 s", s(ours, 5000, "purge"), 1.0)
        target(f"{transport}: get_output 1000 x 3 files <= 0.5 s", s(ours, 1000, "get_output"), 0.5)
    rss = data["rss_mb"].get("5000")
    target("ssh: client peak RSS for 5000 <= 100 MB", rss, RSS_LIMIT_MB, "MB")
    for n in sorted({int(k.split("|")[1]) for k in cells}):
        for op in PEER_OPS:
            for transport, peers in (("ssh", ("dirac-ssh-ce",)), ("local", ("psij", "submitit"))):
                ours = s(f"intercede-{transport}", n, op)
                for peer in peers:
                    theirs = s(peer, n, op)
                    if ours is not None and theirs is not None:
                        target(f"{transport}: {op} {n} ahead of {LABELS[peer]}", ours, theirs)
    return out


def round_trip_failures(data: dict[str, Any]) -> list[str]:
    from cycle import ROUND_TRIPS

    bad = []
    for key, cell in data["cells"].items():
        if not key.startswith("intercede-"):
            continue
        for op, m in cell.items():
            if m["trips"] != [ROUND_TRIPS[op]]:
                bad.append(f"{key} {op}: {m['trips']} round trips, expected {ROUND_TRIPS[op]}")
            if m.get("not_ok"):
                bad.append(f"{key} {op}: {m['not_ok']} not ok, e.g. {m['e.g.']}")
    return bad


def report(data: dict[str, Any], sizes: list[int], results: Path = RESULTS) -> int:
    print("\n".join(table(data, sizes)))
    print("\nseconds (ratio to the floor on the same transport); how each tool was driven:")
    print("\n".join(hows(data)))
    print(f"rounds per cell (median shown): {data['rounds']}")
    print(f"\ninterCEde SSH client peak RSS (MB) by N: {data['rss_mb']}")
    print(f"SSH connections opened per N-cycle: {data['connections']}")
    checks = targets(data)
    print("\ntargets (issue 11):")
    for t in checks:
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        limit = "-" if t["limit"] is None else f"{t['limit']:.3f}"
        print(f"  {state:<13} {t['target']}: {value} {t['unit']} (limit {limit})")
    bad = round_trip_failures(data)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "benchmark": "bulk_ops",
                "slurm": data["slurm"],
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "sizes": sizes,
                **data,
                "targets": checks,
                "correctness_failures": bad,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {results}")
    if bad:
        print("FAILED (round trips or outcomes):\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default=os.environ.get("INTERCEDE_STACK", "intercede"))
    parser.add_argument(
        "--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[200, 1000, 5000]
    )
    parser.add_argument("--peer-max-n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per cell (median)")
    parser.add_argument(
        "--repeat-max-n", type=int, default=1000, help="larger N run one round (MinJobAge waits)"
    )
    parser.add_argument("--peer-repeat", type=int, default=1, help="rounds for the peers")
    parser.add_argument("--no-peers", action="store_true", help="interCEde over SSH only")
    parser.add_argument(
        "--dirac-python",
        default=os.environ.get("INTERCEDE_DIRAC_PYTHON", str(ROOT / ".venv-dirac/bin/python")),
        help="the python of the DIRAC environment (`just dirac-env`)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON to write")
    parser.add_argument("--child-ssh", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_ssh:
        print("@@result " + json.dumps(child_ssh(args.stack, args.child_ssh)))
        return 0
    data = measure(args)
    return report(data, args.sizes, args.results)


if __name__ == "__main__":
    raise SystemExit(main())
