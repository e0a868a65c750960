"""Release hygiene: what the wheel and sdist ship, one version everywhere, the licence text."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

import pytest

import intercede

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
# sha256 of the FSF's GPL version 3 text (gnu.org gpl-3.0.txt, Debian's common-licenses/GPL-3).
GPL3_SHA256 = "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"
NOT_SHIPPED = ("harness/", "tests/", "docs/", "tools/", "benchmarks/", "slurm-stack/")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel and sdist once, offline when hatchling is importable."""
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("hatchling") is not None:
        argv = [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist"]
        argv += ["-d", str(out)]
    else:  # pip fetches hatchling into an isolated build environment
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = {"wheel": next(out.glob("intercede-*.whl"))}
    sdists = list(out.glob("intercede-*.tar.gz"))
    if sdists:
        found["sdist"] = sdists[0]
    return found


def _wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def _wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(f"intercede-{VERSION}.dist-info/METADATA").decode()
    return HeaderParser().parsestr(text)


def test_wheel_ships_the_library_and_its_type_marker(dists: dict[str, Path]) -> None:
    wheel = dists["wheel"]
    assert wheel.name == f"intercede-{VERSION}-py3-none-any.whl"
    names = _wheel_names(wheel)
    for required in ("intercede/__init__.py", "intercede/py.typed", "intercede/sync/__init__.py"):
        assert required in names
    assert f"intercede-{VERSION}.dist-info/licenses/LICENSE" in names
    roots = {name.split("/", 1)[0] for name in names}
    assert roots == {"intercede", f"intercede-{VERSION}.dist-info"}


def test_wheel_leaves_out_harness_tests_and_docs(dists: dict[str, Path]) -> None:
    names = _wheel_names(dists["wheel"])
    leaked = [n for n in names if n.startswith(NOT_SHIPPED) or "/examples/" in n]
    assert leaked == []
    assert not any(n.endswith((".pyc", ".toml", ".md")) for n in names)


def test_wheel_metadata_matches_pyproject(dists: dict[str, Path]) -> None:
    meta = _wheel_metadata(dists["wheel"])
    assert meta["Name"] == "intercede"
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "GPL-3.0-only"
    assert meta["Requires-Python"] == PROJECT["requires-python"]
    with zipfile.ZipFile(dists["wheel"]) as zf:
        entry_points = zf.read(f"intercede-{VERSION}.dist-info/entry_points.txt").decode()
        shipped_licence = zf.read(f"intercede-{VERSION}.dist-info/licenses/LICENSE")
    assert "intercede-debug-ce = intercede._cli.debug_ce:main" in entry_points
    assert shipped_licence == (ROOT / "LICENSE").read_bytes()
    assert sorted(meta.get_all("Classifier") or []) == sorted(PROJECT["classifiers"])
    urls = dict(line.split(", ", 1) for line in meta.get_all("Project-URL") or [])
    assert urls == PROJECT["urls"]


def test_packaging_metadata_names_the_supported_pythons_and_the_project() -> None:
    """PyPI shows these: the Python versions CI tests, where the code, docs and issues live."""
    pythons = [
        c.rsplit(":: ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert pythons == ["3.11", "3.12", "3.13"]
    assert PROJECT["requires-python"] == f">={pythons[0]}"
    assert {"Homepage", "Repository", "Issues", "Changelog", "Documentation"} <= set(
        PROJECT["urls"]
    )
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())


def test_sdist_has_sources_licence_and_changelog_only(dists: dict[str, Path]) -> None:
    if "sdist" not in dists:
        pytest.fail("hatchling is not installed: add it to the dev extra to build the sdist")
    with tarfile.open(dists["sdist"]) as tf:
        names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
    for required in ("LICENSE", "CHANGELOG.md", "README.md", "src/intercede/py.typed"):
        assert required in names
    leaked = [n for n in names if n.startswith(NOT_SHIPPED)]
    assert leaked == [], (
        "sdist includes files outside the library; anchor [tool.hatch.build.targets.sdist] "
        'include patterns at the root ("/README.md", not "README.md", which matches any depth)'
    )


def test_version_is_single_sourced() -> None:
    source = (ROOT / "src" / "intercede" / "__init__.py").read_text()
    assert not re.search(r"^__version__\s*=\s*['\"]", source, re.MULTILINE), (
        "__version__ must come from the distribution metadata, not a second literal"
    )
    assert importlib.metadata.version("intercede") == VERSION, (
        "the installed metadata is stale: reinstall (pip install -e .)"
    )
    assert intercede.__version__ == VERSION


def test_changelog_records_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.MULTILINE)
    assert released, "no dated release heading"
    assert released[0] == VERSION, "the newest release in CHANGELOG.md is not pyproject's version"
    assert f"[{VERSION}]: " in text


def test_licence_is_the_gpl3_text_pyproject_declares() -> None:
    assert PROJECT["license"] == "GPL-3.0-only"
    data = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(data).hexdigest() == GPL3_SHA256
    debian = Path("/usr/share/common-licenses/GPL-3")
    if debian.is_file():
        assert data == debian.read_bytes()


def test_typed_marker_is_in_the_source_tree() -> None:
    assert (ROOT / "src" / "intercede" / "py.typed").is_file()
