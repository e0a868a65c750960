"""Drift checks: docs/migration/dirac.md must keep matching the code and the consumer analysis.

Each table the doc promises is "checked" is parsed here and compared with its source of truth:
the DC ids in the consumer analysis, ``SLURM_STATES``, the adapter's slot function, the
registry's config models and the adapter's key and ``Errno`` tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import intercede
from docs.examples.dirac_adapter import (
    DIRAC_KEY_FOR_FIELD,
    DIRAC_KEY_FOR_RESOURCE,
    IGNORED_KEYS,
    returns,
)
from docs.examples.dirac_adapter.slots import available_slots
from intercede import JobStatus, LocalBatchConfig, Resources, SSHBatchConfig
from intercede._batch.slurm import SLURM_STATES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "migration" / "dirac.md"
CONSUMERS = REPO / "docs" / "migration" / "dirac-consumers.md"
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


def test_slot_examples_are_what_the_adapter_computes(doc: str) -> None:
    rows = table(doc, "slot-examples")
    for max_total, max_waiting, running, waiting, slots in (map(int, row) for row in rows):
        assert available_slots(running, waiting, max_total, max_waiting) == slots, (
            f"MaxTotal={max_total} MaxWaiting={max_waiting} R={running} W={waiting}"
        )
    # DIRAC's own worked examples (DC-23) are among them
    assert ["10", "5", "3", "2", "3"] in rows
    assert ["10", "5", "7", "1", "2"] in rows


def test_config_key_table_names_exactly_the_registry_fields(doc: str) -> None:
    fields = set(SSHBatchConfig.model_fields) | set(LocalBatchConfig.model_fields)
    listed: set[str] = set()
    for row in table(doc, "config-keys"):
        dirac_keys = set(ticked(row[0]))
        for field in ticked(row[1]):
            assert field in fields, f"the doc maps {row[0]} to {field!r}, not a config field"
            assert field not in listed, f"{field} is listed twice"
            listed.add(field)
            assert DIRAC_KEY_FOR_FIELD[field] in dirac_keys, (
                f"{field}: the adapter reads {DIRAC_KEY_FOR_FIELD[field]}, the doc says {row[0]}"
            )
    assert not fields - listed, f"config fields missing from the doc: {sorted(fields - listed)}"
    assert set(DIRAC_KEY_FOR_FIELD) == fields, "the adapter's key table and the config differ"


def test_config_key_table_covers_resources_and_ignored_keys(doc: str) -> None:
    rows = table(doc, "config-keys")
    instead = {key: row[2] for row in rows for key in ticked(row[0])}
    for field, key in DIRAC_KEY_FOR_RESOURCE.items():
        assert field in Resources.model_fields
        assert f"Resources.{field}" in instead.get(key, ""), f"{key} → Resources.{field}"
    missing = sorted(IGNORED_KEYS - instead.keys())
    assert not missing, f"keys the adapter ignores but the doc does not explain: {missing}"


def test_errno_table_matches_the_adapter(doc: str) -> None:
    documented = {}
    for row in table(doc, "errno-table"):
        (exception,), (name,) = ticked(row[0]), ticked(row[1])
        number = int(re.search(r"\((\d+)\)", row[1]).group(1))  # type: ignore[union-attr]
        assert getattr(returns, name) == number, f"{name} is {getattr(returns, name)}"
        documented[getattr(intercede, exception)] = number
    assert documented == dict(returns.ERRNO_BY_EXCEPTION)


def test_relative_links_resolve(doc: str) -> None:
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", doc):
        assert (DOC.parent / target).exists(), f"broken link in docs/migration/dirac.md: {target}"


def test_in_page_anchors_name_a_heading(doc: str) -> None:
    # The slug rule of Python-Markdown's toc extension (what the docs site uses).
    headings = re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}
    missing = sorted(set(re.findall(r"\]\(#([^)]+)\)", doc)) - slugs)
    assert not missing, f"links to anchors no heading produces: {missing}"


def test_site_director_scenario_applies_the_adapter_slot_formula() -> None:
    """The SiteDirector scenario (caller policy in the harness) and the reference adapter carry
    DIRAC's available() formula separately, so they must agree on every input."""
    from harness.scenarios.site_director import available_slots as scenario_slots

    for running in range(12):
        for waiting in range(12):
            for max_total in range(1, 12):
                for max_waiting in range(1, 12):
                    assert scenario_slots(running, waiting, max_total, max_waiting) == (
                        available_slots(running, waiting, max_total, max_waiting)
                    ), (running, waiting, max_total, max_waiting)
