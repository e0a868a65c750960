"""The remote shell scripts (package files beside this module) and the one reader of their
``@@`` reply format.

Each script is a POSIX ``sh`` file under ``intercede/_batch/`` checked by shellcheck in
``just lint``; Python never edits its text. Its parameters are its positional arguments
(``$1``...), bound by one ``set --`` line that ``script`` puts in front of the file, and the
id and path lists travel on stdin, so a script's size does not depend on the number of jobs.

Replies mark their parts with lines that start with ``@@``: ``@@<word> [<argument>]``,
followed by the body lines of that part (``sections``). A body line never starts with ``@@``:
every script prints only ids, states, paths and numbers there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = [
    "MARK",
    "Section",
    "marks",
    "script",
    "sections",
    "source",
    "uses",
]

MARK = "@@"


@cache
def source(name: str) -> str:
    """The packaged script ``name`` (``"slurm_submit.sh"``) as it is sent: without its
    comment and blank lines, which are for its readers (and shellcheck), not for the wire."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if line.strip() and not _comment(line)]
    return "\n".join(kept) + "\n"


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def script(name: str, *args: str) -> str:
    """The packaged script with ``args`` as its positional parameters, ready for ``sh -c``;
    the files of shell functions it names in a ``# uses: <file>`` line are sent before it."""
    text = "".join(source(lib) for lib in uses(name)) + source(name)
    return f"set -- {shlex.join(args)}\n{text}" if args else text


@cache
def uses(name: str) -> tuple[str, ...]:
    """The packaged function files script ``name`` says it needs (``# uses: a.sh b.sh``)."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return tuple(
        lib
        for line in text.splitlines()
        if line.startswith(_USES)
        for lib in line[len(_USES) :].split()
    )


_USES = "# uses: "


@dataclass(frozen=True)
class Section:
    """One ``@@<word> <arg>`` line and the lines up to the next mark. ``word`` is ``""`` for
    the lines before the first mark."""

    word: str
    arg: str
    lines: tuple[str, ...]


def sections(text: str) -> list[Section]:
    """``text`` cut at its marks, in order; the first section (word ``""``) holds what came
    before the first mark and is present even when empty."""
    found: list[Section] = []
    word, arg, body = "", "", list[str]()
    for line in text.splitlines():
        if line.startswith(MARK):
            found.append(Section(word, arg, tuple(body)))
            word, _, arg = line[len(MARK) :].partition(" ")
            body = []
        else:
            body.append(line)
    found.append(Section(word, arg, tuple(body)))
    return found


def marks(text: str, word: str) -> list[str]:
    """The arguments of every ``@@<word>`` line of ``text``, in order."""
    return [s.arg for s in sections(text) if s.word == word]
