"""docs/architecture.md stays true: every ``path:function`` it names exists in that file, and
every file it names exists.

Read with ``ast``, not imported: the flows name harness code whose imports (docker) the unit
environment need not have, and a name must be defined in the very file the doc points at.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
REFERENCE = re.compile(r"`([\w./-]+\.py):([A-Za-z_][\w.]*)`")
FILE = re.compile(r"`([\w./-]+\.(?:py|sh))(?::[\w.]+)?`")


def _references() -> list[tuple[str, str]]:
    return sorted(set(REFERENCE.findall(DOC.read_text(encoding="utf-8"))))


def _files() -> list[str]:
    return sorted(set(FILE.findall(DOC.read_text(encoding="utf-8"))))


@cache
def _definitions(path: str) -> frozenset[str]:
    """Every qualified name a module defines: functions, classes, their methods."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    names: set[str] = set()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                names.add(name)
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{name}.")

    visit(tree, "")
    return frozenset(names)


def test_the_doc_names_functions_in_every_flow() -> None:
    text = DOC.read_text(encoding="utf-8")
    for flow in ("a facade call", "submit", "status", "output collection", "cluster up"):
        assert f": {flow}\n" in text
    assert len(_references()) > 40


@pytest.mark.parametrize(("path", "name"), _references())
def test_named_function_exists(path: str, name: str) -> None:
    assert (REPO / path).is_file(), f"{path} does not exist"
    assert name in _definitions(path), f"{path} defines no {name}"


@pytest.mark.parametrize("path", _files())
def test_named_file_exists(path: str) -> None:
    assert (REPO / path).is_file(), f"{path} does not exist"


def test_the_checker_catches_a_missing_name() -> None:
    """The check can fail: a name the module does not define is not found."""
    assert "BatchBackend.submit" in _definitions("src/intercede/_batch/backend.py")
    assert "BatchBackend.no_such_method" not in _definitions("src/intercede/_batch/backend.py")


def test_the_backend_knows_no_scheduler() -> None:
    """The seam holds: ``BatchBackend`` reaches Slurm only through ``Scheduler`` (no import of
    it, no Slurm command in its code); only the factory names a scheduler, by the config's
    ``scheduler`` key."""
    tree = ast.parse((REPO / "src/intercede/_batch/backend.py").read_text(encoding="utf-8"))
    modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom | ast.Import)
        for alias in node.names
    }
    assert not any("slurm" in name for name in modules | names)
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
    }
    strings = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip
    assert strings  # the check reads the code's strings
    for command in ("sbatch", "squeue", "sacct", "scancel", "scontrol", "slurm"):
        assert not [text for text in strings if command in text.lower()], command
    factory = (REPO / "src/intercede/_batch/factory.py").read_text(encoding="utf-8")
    assert 'config.scheduler == "slurm"' in factory
