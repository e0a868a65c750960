"""Which class a failed submit raises: staging failures queued nothing (plain
``ResourceUnavailableError``), transient sbatch refusals are retryable
(``SubmitUnavailableError``), anything else is ``SpecificationRejectedError``. The sbatch
messages are the real ones, recorded from both Slurm variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intercede import (
    ResourceUnavailableError,
    SpecificationRejectedError,
    SubmitUnavailableError,
)
from intercede._batch import slurm
from intercede._batch.slurm import STAGING_EXIT_CODES
from intercede._batch.slurm import submit_error as _submit_error

DATA = Path(__file__).parent / "data" / "slurm"
VARIANTS = ("bookworm", "trixie")
BATCH = "ef" * 16

TRANSIENT_CASES = (
    "munge_down_on_login",
    "munge_down_on_controller",
    "controller_unresolvable",
    "controller_down",
)
ISSUE_MESSAGES = (
    "Protocol authentication error",  # munge down on the login node (both variants)
    "Zero Bytes were transmitted or received",  # munge down on the controller (22.05)
    "Unable to establish control machine address",  # controller unresolvable (22.05)
)
PERMANENT_CASES = {
    "invalid_partition": "invalid partition",
    "impossible_nodes": "node configuration is not available",
}


def _recorded(variant: str) -> dict[str, str]:
    data = json.loads((DATA / variant / "sbatch_refusals.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", TRANSIENT_CASES)
def test_recorded_transient_refusals_are_retryable(variant: str, case: str) -> None:
    message = _recorded(variant)[case]
    error = _submit_error(93, message, "/w", BATCH)
    assert isinstance(error, SubmitUnavailableError)
    assert isinstance(error, ResourceUnavailableError)
    assert error.batch == BATCH


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", sorted(PERMANENT_CASES))
def test_recorded_permanent_refusals_are_rejections(variant: str, case: str) -> None:
    message = _recorded(variant)[case]
    assert PERMANENT_CASES[case].lower() in message.lower()
    assert not slurm.is_transient(message)
    error = _submit_error(93, message, "/w", BATCH)
    assert type(error) is SpecificationRejectedError
    assert "sbatch refused" in str(error)


@pytest.mark.parametrize("message", ISSUE_MESSAGES)
def test_each_message_of_the_issue_was_recorded_from_a_real_cluster(message: str) -> None:
    recorded = [text for variant in VARIANTS for text in _recorded(variant).values()]
    assert any(message in text for text in recorded)


@pytest.mark.parametrize(
    "message",
    [
        "sbatch: error: Batch job submission failed: Protocol authentication error",
        "sbatch: error: Batch job submission failed: Zero Bytes were transmitted or received",
        "sbatch: error: Unable to establish control machine address",
    ],
)
def test_the_three_messages_of_the_issue_are_transient(message: str) -> None:
    assert slurm.is_transient(message)
    assert isinstance(_submit_error(93, message, "/w", BATCH), SubmitUnavailableError)


@pytest.mark.parametrize("rc", sorted(STAGING_EXIT_CODES))
def test_a_staging_failure_queued_nothing_and_says_so(rc: int) -> None:
    error = _submit_error(rc, "tar: write error: No space left on device", "/w", BATCH)
    assert type(error) is ResourceUnavailableError
    assert not isinstance(error, SubmitUnavailableError)
    assert STAGING_EXIT_CODES[rc] in str(error)
    assert "nothing was queued" in str(error)
    assert "No space left on device" in str(error)


def test_the_unpack_failure_names_its_likely_causes() -> None:
    assert "disk full" in str(_submit_error(92, "", "/w", BATCH))
    assert "exit code 92" in str(_submit_error(92, "", "/w", BATCH))


def test_an_unknown_exit_code_without_a_reply_is_in_doubt() -> None:
    error = _submit_error(137, "", "/w", BATCH)
    assert isinstance(error, SubmitUnavailableError)
    assert "exit code 137" in str(error)
