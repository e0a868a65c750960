"""The packaged remote scripts and the one reader of their ``@@`` replies."""

from __future__ import annotations

import shlex
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from intercede._batch import remote

PACKAGE = resources.files("intercede._batch")
SCRIPTS = sorted(p.name for p in PACKAGE.iterdir() if p.name.endswith(".sh"))
SOURCES = Path(__file__).resolve().parents[2] / "src" / "intercede" / "_batch"


def test_sections_cut_at_marks_and_keep_the_lines_before_the_first() -> None:
    parts = remote.sections("RUNNING\nPENDING\n@@partition\nmain|UP\n@@end\n")
    assert [(p.word, p.arg, p.lines) for p in parts] == [
        ("", "", ("RUNNING", "PENDING")),
        ("partition", "", ("main|UP",)),
        ("end", "", ()),
    ]
    assert remote.sections("") == [remote.Section("", "", ())]


def test_marks_give_each_argument_in_order() -> None:
    text = "@@had 1/0\nnoise\n@@had 1/2\n@@done\n"
    assert remote.marks(text, "had") == ["1/0", "1/2"]
    assert remote.marks(text, "gone") == []


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_is_sent_without_comments_and_parses(name: str) -> None:
    text = remote.source(name)
    assert text.endswith("\n")
    assert not any(line.lstrip().startswith("#") for line in text.splitlines())
    subprocess.run(["sh", "-n", "-c", text], check=True)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_is_used_by_the_code(name: str) -> None:
    users = [p for p in SOURCES.glob("*.py") if f'"{name}"' in p.read_text(encoding="utf-8")]
    assert users, f"{name} is packaged but no module runs it"


def test_arguments_reach_the_script_byte_for_byte() -> None:
    awkward = ["a b", "$(echo no)", "it's", "line\nbreak", "-n", ""]
    script = remote.script("purge.sh", *awkward)
    bind = script.removesuffix(remote.source("purge.sh"))
    assert bind == f"set -- {shlex.join(awkward)}\n"
    shown = subprocess.run(
        ["sh", "-c", bind + 'printf "%s\\0" "$@"'],
        capture_output=True,
        check=True,
    )
    assert shown.stdout.decode().split("\0")[:-1] == awkward
