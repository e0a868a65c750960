"""Progress while queues are being checked: redrawn in place on a terminal, plain lines
otherwise (logs, CI), nothing at all when stdout carries the JSON document.

Queue checks run in threads, so every display serialises writes with one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, TextIO

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
            self._stream.write(f"[{queue}] {text}\n")
            self._stream.flush()

    def finish(self) -> None:
        return None


class LiveProgress:
    """One line per queue, rewritten in place with ANSI cursor movement."""

    def __init__(self, stream: TextIO, queues: Sequence[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._width = max((len(q) for q in queues), default=0)
        self._lines: dict[str, str] = dict.fromkeys(queues, "waiting to start")
        self._drawn = 0

    def _draw(self) -> None:
        if self._drawn:
            self._stream.write(f"\x1b[{self._drawn}F")  # to the start of our first line
        for queue, text in self._lines.items():
            self._stream.write(f"\x1b[2K{queue:<{self._width}}  {text}\n")
        self._drawn = len(self._lines)
        self._stream.flush()

    def update(self, queue: str, text: str) -> None:
        with self._lock:
            self._lines[queue] = text
            self._draw()

    def finish(self) -> None:
        with self._lock:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()


def make_progress(stream: TextIO, queues: Sequence[str], *, json_mode: bool) -> Progress:
    if json_mode:
        return SilentProgress()
    if stream.isatty():
        return LiveProgress(stream, queues)
    return LineProgress(stream)
