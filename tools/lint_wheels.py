"""Pin the ruff and mypy wheels the flake's lint check runs to the versions `just lint` runs.

`just lint` runs the ruff and mypy that pip installs from pyproject.toml's ``dev`` extra
(``ruff==…``, ``mypy==…``); nixpkgs ships other versions, which format and type check by other
rules. So the flake does not take them from nixpkgs: it fetches the same releases from PyPI with
nixpkgs' ``fetchPypi``, by the file names and hashes recorded in ``nix/lint-tools.json``.

``python -m tools.lint_wheels`` rewrites that file: for each Nix system it asks pip to download
ruff, mypy and mypy's runtime dependencies (pinned with ``==`` in the ``dev`` extra too, so pip
installs exactly these for `just lint`) as CPython 3.13 wheels for that platform, and records
each file's name parts and SRI hash. ``--check`` (no network) fails when the file no longer
matches pyproject.toml's pins or mypy's dependencies; the unit tests and the lint workflow run it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = [
    "NIXPKGS_PROVIDED",
    "OUTPUT",
    "PLATFORMS",
    "PYTHON",
    "build",
    "main",
    "mypy_requirements",
    "problems",
    "pyproject_pins",
    "wheel_entry",
]

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "nix" / "lint-tools.json"
PYTHON = "3.13"
"""The flake's interpreter (``pkgs.python313``); the mypy wheels are compiled per version."""
TOOLS = ("ruff", "mypy")
PLATFORMS: Mapping[str, tuple[str, ...]] = {
    "x86_64-linux": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "aarch64-linux": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}
NIXPKGS_PROVIDED = frozenset({"pathspec", "typing-extensions"})
"""Dependencies taken from nixpkgs: other packages of the Nix environment (hatchling, mkdocs,
pydantic) depend on them too, and two copies of one distribution would collide."""


def pyproject_pins(pyproject: Path | None = None) -> dict[str, str]:
    """Every ``==`` pin of the ``dev`` extra, e.g. ``{"ruff": "0.17.6", "mypy": "2.4.1", ...}``."""
    data = tomllib.loads((pyproject or ROOT / "pyproject.toml").read_text())
    pins: dict[str, str] = {}
    for spec in data["project"]["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[str(canonicalize_name(req.name))] = exact[0]
    missing = [t for t in TOOLS if t not in pins]
    if missing:
        raise ValueError(f"pyproject.toml: the dev extra does not pin {missing} with ==")
    return pins


def requirements(dist: str) -> dict[str, str]:
    """``dist``'s runtime dependencies on CPython 3.13 Linux, at the versions installed here."""
    env = {str(k): str(v) for k, v in default_environment().items()}
    env.update(
        python_version=PYTHON, sys_platform="linux", platform_python_implementation="CPython"
    )
    env["extra"] = ""
    deps: dict[str, str] = {}
    for spec in importlib.metadata.requires(dist) or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        deps[name] = importlib.metadata.version(name)
    return deps


def mypy_requirements() -> dict[str, dict[str, str]]:
    """mypy and everything it needs at run time: ``{name: {dependency: version}}``."""
    closure: dict[str, dict[str, str]] = {}
    todo = ["mypy"]
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure[name] = requirements(name)
        todo += [dep for dep in closure[name] if dep not in NIXPKGS_PROVIDED]
    return closure


def _sri(path: Path) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def wheel_entry(path: Path) -> dict[str, str]:
    """fetchPypi's wheel arguments for a file: its URL is built from exactly these parts."""
    m = re.fullmatch(r"([^-]+)-([^-]+)-([^-]+)-([^-]+)-([^-]+)\.whl", path.name)
    if m is None:
        raise ValueError(f"not a wheel file name: {path.name}")
    pname, version, python, abi, platform = m.groups()
    return {
        "pname": pname,
        "version": version,
        "dist": python,
        "python": python,
        "abi": abi,
        "platform": platform,
        "hash": _sri(path),
    }


def _download(names: Mapping[str, str], platforms: tuple[str, ...], dest: Path) -> None:
    tag = PYTHON.replace(".", "")
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    argv += ["--python-version", PYTHON, "--implementation", "cp", "-d", str(dest)]
    for abi in (f"cp{tag}", "abi3", "none"):
        argv += ["--abi", abi]
    for platform in platforms:
        argv += ["--platform", platform]
    argv += [f"{name}=={version}" for name, version in names.items()]
    subprocess.run(argv, check=True)


def expected() -> tuple[dict[str, str], dict[str, list[str]]]:
    """What the file must hold: ``{wheel: version}`` and ``{wheel: its dependencies}``.

    The wheels are ruff, mypy and mypy's dependency closure (as installed here) less what
    nixpkgs provides (:data:`NIXPKGS_PROVIDED`), each at its ``==`` pin in pyproject.toml.
    """
    pins = pyproject_pins()
    closure = mypy_requirements()
    names = sorted({*TOOLS, *closure})
    unpinned = [name for name in names if name not in pins]
    if unpinned:
        raise ValueError(f"pyproject.toml: pin {unpinned} with == in the dev extra")
    versions = {name: pins[name] for name in names}
    requires = {name: sorted(closure.get(name, {})) for name in names}
    return versions, requires


def build() -> dict[str, Any]:
    """Download every pinned wheel for every platform and describe it (needs PyPI)."""
    versions, requires = expected()
    wheels: dict[str, dict[str, dict[str, str]]] = {}
    for system, platforms in PLATFORMS.items():
        with tempfile.TemporaryDirectory() as tmp:
            _download(versions, platforms, Path(tmp))
            found = {
                str(canonicalize_name(p.name.split("-")[0])): p for p in Path(tmp).glob("*.whl")
            }
            absent = sorted(set(versions) - set(found))
            if absent:
                raise RuntimeError(f"{system}: pip downloaded no wheel for {absent}")
            wheels[system] = {name: wheel_entry(found[name]) for name in versions}
    return {
        "_comment": "GENERATED by `python -m tools.lint_wheels` from pyproject.toml's pins; "
        "do not edit.",
        "python": PYTHON,
        "versions": versions,
        "requires": requires,
        "wheels": wheels,
    }


def problems(data: Mapping[str, Any]) -> list[str]:
    """Why ``data`` (the JSON file) disagrees with pyproject.toml or this environment."""
    found: list[str] = []
    versions, requires = expected()
    have: Mapping[str, str] = data.get("versions", {})
    for name, version in versions.items():
        if have.get(name) != version:
            found.append(f"{name}: pyproject.toml pins {version}, the flake has {have.get(name)}")
    found += [f"{name}: not needed by ruff or mypy" for name in sorted(set(have) - set(versions))]
    if data.get("requires") != requires:
        found.append(
            f"dependencies differ: the flake has {data.get('requires')}, pip resolved {requires}"
        )
    if data.get("python") != PYTHON:
        found.append(f"wheels are for Python {data.get('python')}, the flake uses {PYTHON}")
    for system in PLATFORMS:
        entries = data.get("wheels", {}).get(system, {})
        for name, version in versions.items():
            entry = entries.get(name, {})
            if entry.get("version") != version or not entry.get("hash", "").startswith("sha256-"):
                found.append(f"{system}: no {name} {version} wheel with a sha256 hash")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.lint_wheels", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="compare nix/lint-tools.json, download nothing"
    )
    args = parser.parse_args(argv)
    if args.check:
        found = problems(json.loads(OUTPUT.read_text()))
        for line in found:
            print(f"nix/lint-tools.json: {line}", file=sys.stderr)
        if found:
            print("run `python -m tools.lint_wheels` to refresh it", file=sys.stderr)
        return 1 if found else 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
