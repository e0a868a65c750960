"""Drift checks: docs/migration/dirac.md must keep matching interCEde's code and the analysis.

Each table the doc promises is "checked" is parsed here and compared with its source of truth:
the DC ids in the consumer analysis, ``SLURM_STATES`` and the registry's config models. What
needs DIRAC itself (the members the doc cites, the CE's key and ``Errno`` tables) is checked by
``test_dirac_drift.py`` in DIRAC's environment, and the slot examples by ``tests/dirac``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intercede import JobStatus, LocalBatchConfig, SSHBatchConfig
from intercede._batch.slurm import SLURM_STATES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "migration" / "dirac.md"
CONSUMERS = REPO / "docs" / "migration" / "dirac-consumers.md"
EXTENSION = REPO / "docs" / "examples" / "intercede-dirac"
SHARED_CONSUMERS = REPO.parent / "shared" / "reference" / "dirac-consumers.md"
"""Where the analysis was first written, beside the repository; only some checkouts have it."""
DC_ID = re.compile(r"\bDC-\d{2}\b")
TICKED = re.compile(r"`([^`]+)`")


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def consumer_ids() -> list[str]:
    if not CONSUMERS.is_file():
        pytest.fail(f"the DIRAC consumer analysis is missing: expected it at {CONSUMERS}")
    ids = sorted(set(DC_ID.findall(CONSUMERS.read_text())))
    assert ids, f"no DC-nn ids found in {CONSUMERS}"
    return ids


def table(doc: str, name: str) -> list[list[str]]:
    """The body rows of the table between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", doc, re.DOTALL)
    assert match, f"docs/migration/dirac.md has no '{name}' table markers"
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]
    assert rows, f"the '{name}' table is empty"
    return rows


def ticked(cell: str) -> list[str]:
    return TICKED.findall(cell)


def test_in_repo_consumer_analysis_is_the_shared_one() -> None:
    """The copy in docs/ is what every clone checks against; where the original still sits
    beside the repository, the two must not drift apart."""
    assert CONSUMERS.is_file(), f"missing {CONSUMERS}"
    if SHARED_CONSUMERS.is_file():
        assert CONSUMERS.read_bytes() == SHARED_CONSUMERS.read_bytes(), (
            f"{CONSUMERS.relative_to(REPO)} differs from {SHARED_CONSUMERS}: copy it again"
        )


def test_doc_links_the_in_repo_consumer_analysis(doc: str) -> None:
    assert "](dirac-consumers.md)" in doc
    assert "shared/reference" not in doc


def test_every_consumer_convention_is_cited(doc: str) -> None:
    missing = [dc for dc in consumer_ids() if f"`{dc}`" not in doc]
    assert not missing, f"docs/migration/dirac.md does not cite {missing}"


def test_translation_table_has_one_row_per_convention_in_order(doc: str) -> None:
    rows = re.findall(r"^\| `(DC-\d{2})` \|", doc, re.MULTILINE)
    assert rows == consumer_ids()


def test_doc_cites_no_convention_the_analysis_lacks(doc: str) -> None:
    unknown = sorted(set(DC_ID.findall(doc)) - set(consumer_ids()))
    assert not unknown, f"the doc cites ids the consumer analysis does not define: {unknown}"


def test_slurm_state_table_matches_the_code(doc: str) -> None:
    documented: dict[str, JobStatus] = {}
    for row in table(doc, "slurm-states"):
        (state,), (status,) = ticked(row[0]), ticked(row[1])
        assert state not in documented, f"{state} is listed twice"
        documented[state] = JobStatus(status)
    wrong = {
        s: (documented[s], SLURM_STATES[s])
        for s in documented.keys() & SLURM_STATES.keys()
        if documented[s] != SLURM_STATES[s]
    }
    assert not wrong, f"doc maps differently from SLURM_STATES (doc, code): {wrong}"
    assert not documented.keys() - SLURM_STATES.keys(), "doc lists states the code does not map"
    assert not SLURM_STATES.keys() - documented.keys(), "SLURM_STATES entries missing from the doc"


def test_dirac_column_of_the_state_table_is_dirac_s_plugin(doc: str) -> None:
    # DC-14, as the consumer analysis states it.
    dirac = {
        **dict.fromkeys(["PENDING", "SUSPENDED", "CONFIGURING"], "Waiting"),
        **dict.fromkeys(["RUNNING", "COMPLETING"], "Running"),
        **dict.fromkeys(["CANCELLED", "PREEMPTED"], "Aborted"),
        "COMPLETED": "Done",
        **dict.fromkeys(["FAILED", "TIMEOUT", "NODE_FAIL"], "Failed"),
    }
    for row in table(doc, "slurm-states"):
        (state,) = ticked(row[0])
        assert ticked(row[2])[0] == dirac.get(state, "Unknown"), state


def test_config_key_table_names_exactly_the_registry_fields(doc: str) -> None:
    fields = set(SSHBatchConfig.model_fields) | set(LocalBatchConfig.model_fields)
    listed: set[str] = set()
    for row in table(doc, "config-keys"):
        dirac_keys = set(ticked(row[0]))
        for field in ticked(row[1]):
            assert field in fields, f"the doc maps {row[0]} to {field!r}, not a config field"
            assert field not in listed, f"{field} is listed twice"
            assert dirac_keys, f"{field}: the row names no DIRAC key"
            listed.add(field)
    assert not fields - listed, f"config fields missing from the doc: {sorted(fields - listed)}"


def test_relative_links_resolve(doc: str) -> None:
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", doc):
        assert (DOC.parent / target).exists(), f"broken link in docs/migration/dirac.md: {target}"


def test_in_page_anchors_name_a_heading(doc: str) -> None:
    # The slug rule of Python-Markdown's toc extension (what the docs site uses).
    headings = re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}
    missing = sorted(set(re.findall(r"\]\(#([^)]+)\)", doc)) - slugs)
    assert not missing, f"links to anchors no heading produces: {missing}"


def test_doc_describes_the_extension_not_the_old_adapter(doc: str) -> None:
    """The CE is the DIRAC extension; the stand-alone adapter package is gone."""
    assert (EXTENSION / "pyproject.toml").is_file()
    assert "pip install docs/examples/intercede-dirac" in doc
    assert "CEType = InterCEde" in doc
    for gone in ("dirac_adapter", "fromParameters", "ce.close()", "available_slots"):
        assert gone not in doc, f"the doc still mentions the old adapter's {gone}"


def test_doc_names_what_dirac_calls_at_eviction_and_late_writes(doc: str) -> None:
    # The calls DIRAC 9.1.22 makes that the first adapter missed (issue 10).
    for needed in (
        "shutdown()",
        "ce.preamble",
        "INTEGER_PARAMETERS",
        '":stderr"',
        '":log"',
        "FailedCopies",
    ):
        assert needed in doc, f"the doc does not mention {needed}"
