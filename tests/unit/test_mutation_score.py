"""The mutation run's judge: mutmut's score, the floor, and survivors the docs accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import mutation_score


@pytest.mark.parametrize(
    ("stats", "rate"),
    [
        ({"total": 10, "killed": 8, "timeout": 1, "skipped": 0}, 90.0),
        ({"total": 12, "killed": 8, "timeout": 1, "skipped": 2}, 90.0),
        ({"total": 0}, 0.0),
        ({"total": 3, "skipped": 3}, 0.0),
    ],
)
def test_kill_rate_is_mutmuts_score(stats: dict[str, int], rate: float) -> None:
    assert mutation_score.kill_rate(stats) == pytest.approx(rate)


def _stats(tmp_path: Path, killed: int, survived: int) -> Path:
    path = tmp_path / "stats.json"
    total = killed + survived
    path.write_text(json.dumps({"total": total, "killed": killed, "survived": survived}))
    return path


def test_below_the_floor_fails_and_at_it_passes(tmp_path: Path) -> None:
    assert mutation_score.main(["--stats", str(_stats(tmp_path, 84, 16))]) == 1
    assert mutation_score.main(["--stats", str(_stats(tmp_path, 85, 15))]) == 0


def test_survivors_are_told_apart_by_the_docs_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "mutation.md"
    doc.write_text(
        "## Accepted\n\n- `intercede.models.x_f__mutmut_3`: equivalent (same result)\n"
        "text that mentions `intercede.models.x_g__mutmut_9` is not a list item\n"
    )
    assert mutation_score.accepted_survivors(doc.read_text()) == {"intercede.models.x_f__mutmut_3"}
    results = tmp_path / "results.txt"
    results.write_text(
        "    intercede.models.x_f__mutmut_3: survived\n"
        "    intercede.models.x_g__mutmut_9: survived\n"
        "    intercede.models.x_h__mutmut_1: killed\n"
    )
    stats = _stats(tmp_path, 9, 1)
    mutation_score.main(
        ["--stats", str(stats), "--survivors-file", str(results), "--accepted-doc", str(doc)]
    )
    out = capsys.readouterr().out
    assert "survivors: 2 (1 accepted in the docs)" in out
    assert "new survivor: intercede.models.x_g__mutmut_9" in out
    assert "x_f__mutmut_3" not in out.split("survivors:")[1]
    assert "x_h__mutmut_1" not in out
