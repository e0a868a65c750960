"""Import rules that keep the layers honest, read from the source with ``ast`` (nothing imported).

- No harness class grows past about 300 lines: the harness is split by concern (stack,
  lifecycle, readiness, node access, provisioning, faults), and a class that size is two.
- The harness's modules import each other without a circle: a circle means two modules that are
  one module in two files (``image`` and ``pins`` were), and it breaks when either is imported
  first from a new place.
- The harness, the benchmarks and the docs' examples use interCEde as any consumer would: only
  public modules and names. A private import there pins an internal that the library must stay
  free to change. The benchmarks likewise use only the harness's public modules.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "harness"

NOT_YET: set[Path] = set()
"""Files allowed to break the rule for now (none: bulk_ops.py moved onto the public API)."""

Import = tuple[int, str, tuple[str, ...]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, module: str, is_package: bool = False) -> Iterator[Import]:
    """(line, absolute module, names) for every import in ``source``, wherever it stands.

    Imports inside functions count: the image/pins circle was one of those.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base, tuple(a.name for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value, ()


def _file_imports(path: Path) -> Iterator[Import]:
    return _imports(path.read_text(), _module_name(path), path.name == "__init__.py")


def harness_graph() -> dict[str, set[str]]:
    """harness module -> the harness modules it imports (``from harness import x`` included)."""
    files = sorted(HARNESS.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        edges: set[str] = set()
        for _, target, names in _file_imports(path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != _module_name(path):
                    edges.add(candidate)
                    break
        graph[_module_name(path)] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle_and_only_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"image"}, "image": {"pins"}, "pins": {"image"}}) == [
        "image",
        "pins",
        "image",
    ]


def test_the_graph_sees_lazy_and_package_imports() -> None:
    graph = harness_graph()
    assert "harness.engine" in graph["harness.stack"]  # ``from harness import engine``
    assert "harness.image" in graph["harness.lifecycle"]  # imported inside ensure_image
    assert "harness.scenarios._context" in graph["harness.scenarios"]  # ``from ._context``


def test_the_harness_has_no_import_circle() -> None:
    assert find_cycle(harness_graph()) is None


def _is_private(module: str, names: tuple[str, ...], package: str = "intercede") -> bool:
    """Whether the import reaches a ``_``-prefixed module or name of ``package``."""
    parts = module.split(".")
    if parts[0] != package:
        return False
    private = [p for p in parts[1:] if p.startswith("_")]
    private += [n for n in names if n.startswith("_") and not n.startswith("__")]
    return bool(private)


def consumer_files() -> list[Path]:
    files = [
        *HARNESS.rglob("*.py"),
        *(ROOT / "benchmarks").rglob("*.py"),
        *(ROOT / "docs" / "examples").rglob("*.py"),
    ]
    return sorted(f for f in files if f not in NOT_YET)


def doc_snippets() -> list[tuple[str, str]]:
    """(where, code) for every fenced Python block in the docs: what a reader copies."""
    return [
        (f"{md.relative_to(ROOT)} block {i}", code)
        for md in sorted((ROOT / "docs").rglob("*.md"))
        for i, code in enumerate(re.findall(r"```(?:python|py)\n(.*?)```", md.read_text(), re.S), 1)
    ]


def private_imports(imports: Iterator[Import], where: str, package: str = "intercede") -> list[str]:
    return [
        f"{where}:{line}: {target}" + (f" ({', '.join(names)})" if names else "")
        for line, target, names in imports
        if _is_private(target, names, package)
    ]


@pytest.mark.parametrize(
    ("module", "names", "private"),
    [
        ("intercede", ("SubmissionSpec", "__version__"), False),
        ("intercede.sync", ("connect",), False),
        ("intercede._batch.transport", ("put_tar",), True),
        ("intercede.sync", ("_runtime",), True),
        ("intercede._cli._poll", (), True),
        ("harness._lock", ("stack_lock",), False),
    ],
)
def test_what_counts_as_private(module: str, names: tuple[str, ...], private: bool) -> None:
    assert _is_private(module, names) is private


def test_a_private_import_is_found_even_inside_a_function() -> None:
    source = (
        "import intercede.sync\n"
        "from intercede import SubmissionSpec\n"
        "def f():\n"
        "    from intercede._batch.transport import put_tar\n"
        "    importlib.import_module('intercede._cli._poll')\n"
    )
    assert private_imports(_imports(source, "benchmarks.sample"), "sample.py") == [
        "sample.py:4: intercede._batch.transport (put_tar)",
        "sample.py:5: intercede._cli._poll",
    ]


def test_harness_and_benchmarks_import_only_public_intercede() -> None:
    files = consumer_files()
    assert ROOT / "benchmarks" / "facade_overhead.py" in files
    assert ROOT / "harness" / "e2e.py" in files
    found = [
        line
        for path in files
        for line in private_imports(_file_imports(path), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_doc_examples_import_only_public_intercede() -> None:
    snippets = doc_snippets()
    assert any("import intercede" in code for _, code in snippets)
    found = [
        line
        for where, code in snippets
        for line in private_imports(_imports(code, "docs.snippet"), where)
    ]
    assert found == []


def test_benchmarks_import_only_public_harness_modules() -> None:
    """A benchmark is another package: the harness's ``_`` modules are its own business."""
    benchmarks = sorted((ROOT / "benchmarks").rglob("*.py"))
    assert ROOT / "benchmarks" / "dirac_site_director.py" in benchmarks
    assert ROOT / "benchmarks" / "peers" / "dirac_ssh_ce.py" in benchmarks
    found = [
        line
        for path in benchmarks
        for line in private_imports(_file_imports(path), path.name, package="harness")
    ]
    assert found == []


MAX_CLASS_LINES = 300


def test_no_harness_class_is_over_300_lines() -> None:
    sizes = {
        f"{path.relative_to(ROOT)}:{node.name}": node.end_lineno - node.lineno + 1
        for path in sorted(HARNESS.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None
    }
    assert "harness/lifecycle.py:Lifecycle" in sizes
    assert {name: n for name, n in sizes.items() if n > MAX_CLASS_LINES} == {}
