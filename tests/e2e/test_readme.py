"""The README's example, run exactly as written against the live cluster: its bash block sets
``INTERCEDE_CONFIG`` with ``python -m harness config-path``, its Python block is the script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cluster import Cluster

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    section = README.read_text().split("## Using it", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_example_runs_as_written(slurm_cluster: Cluster, tmp_path: Path) -> None:
    (shell,) = _blocks("bash")
    (code,) = _blocks("python")
    (tmp_path / "example.py").write_text(code)
    env = {**os.environ, "INTERCEDE_STACK": slurm_cluster.name, "PYTHONPATH": str(README.parent)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # `python` is this venv's
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", shell],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    for line in lines:
        assert re.fullmatch(r"\d+_\d+: Done: pilot [0-9a-f]{32} on worker\d+", line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.py"]  # ran in a temp dir
