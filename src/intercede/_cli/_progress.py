"""Progress while queues are being checked: a live table on a terminal (``rich``), plain lines
otherwise (logs, CI, ``TERM=dumb``), nothing at all when stdout carries the JSON document.

``rich`` owns the redraw: wrapped lines, messages with newlines and more queues than terminal
rows (the table is cropped with an ellipsis) cannot leave stale lines behind, and it honours
``NO_COLOR``. Each queue's row shows the time since the run started, so a long wait is visibly
alive. Queue checks run in threads, so every display serialises its updates with one lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["LineProgress", "LiveProgress", "Progress", "SilentProgress", "make_progress"]


class Progress(Protocol):
    def update(self, queue: str, text: str) -> None: ...

    def finish(self) -> None: ...


class SilentProgress:
    def update(self, queue: str, text: str) -> None:
        return None

    def finish(self) -> None:
        return None


class LineProgress:
    """One line per event: greppable, and safe for output that is not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def update(self, queue: str, text: str) -> None:
        with self._lock:
            self._stream.write(f"[{queue}] {' '.join(text.split())}\n")
            self._stream.flush()

    def finish(self) -> None:
        return None


class LiveProgress:
    """One row per queue (queue, elapsed seconds, what is happening), redrawn by ``rich``."""

    def __init__(self, stream: TextIO, queues: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._lines: dict[str, str] = dict.fromkeys(queues, "waiting to start")
        self._console = Console(file=stream)
        self._live = Live(
            get_renderable=self._table,
            console=self._console,
            refresh_per_second=4,
            vertical_overflow="ellipsis",
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, style="bold")
        table.add_column(justify="right", no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis")
        elapsed = f"{time.monotonic() - self._started:.0f}s"
        with self._lock:
            for queue, text in self._lines.items():
                table.add_row(queue, elapsed, " ".join(text.split()))
        return table

    def update(self, queue: str, text: str) -> None:
        with self._lock:
            self._lines[queue] = text

    def finish(self) -> None:
        self._live.stop()


def make_progress(stream: TextIO, queues: Sequence[str], *, json_mode: bool) -> Progress:
    if json_mode:
        return SilentProgress()
    if stream.isatty() and os.environ.get("TERM", "") != "dumb":
        return LiveProgress(stream, queues)
    return LineProgress(stream)
