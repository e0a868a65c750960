"""The one file lock the CLI, e2e runs, pytest workers and engine bootstrap share."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from harness._lock import flock, stack_lock, stack_lock_path


def test_stack_lock_lives_in_the_checkout_state_dir(tmp_path: Path) -> None:
    assert stack_lock_path("intercede", tmp_path) == tmp_path / ".intercede" / "intercede.lock"
    with stack_lock("x", tmp_path):
        assert (tmp_path / ".intercede" / "x.lock").exists()


def test_holders_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "a.lock"
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        with flock(path):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert overlaps == []


def test_another_process_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "b.lock"
    code = (
        "import sys, time; from pathlib import Path; from harness._lock import flock\n"
        "t = time.monotonic()\n"
        "with flock(Path(sys.argv[1])): print(round(time.monotonic() - t, 2))\n"
    )
    with flock(path):
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.8)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert float(out) >= 0.5, "the child got the lock while we held it"
