"""The public models: validation names the field, identities round-trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretBytes, ValidationError

from intercede import (
    CopyVars,
    FileRef,
    JobHandle,
    JobOutput,
    JobStatus,
    LoadCounts,
    OpOutcome,
    OutputMember,
    OutputSpec,
    Resources,
    Submission,
    SubmissionSpec,
)
from intercede.models import HANDLE_MAX_LENGTH


def _field_of(exc: ValidationError) -> tuple[object, ...]:
    return exc.errors()[0]["loc"]


# --- JobHandle ---------------------------------------------------------------------------

HANDLE = JobHandle(
    backend="slurm+ssh",
    resource="submit@ce.example.org:22",
    id="4242_7",
    routing="3f2ac0ffee/7",
)


def test_handle_compact_form_is_documented_shape() -> None:
    assert str(HANDLE) == "slurm+ssh://submit@ce.example.org:22/4242_7?3f2ac0ffee/7"


def test_handle_round_trips_through_json_and_compact_form() -> None:
    assert JobHandle.model_validate_json(HANDLE.model_dump_json()) == HANDLE
    assert JobHandle.parse(str(HANDLE)) == HANDLE
    assert json.loads(HANDLE.model_dump_json())["id"] == "4242_7"


def test_handle_without_routing_has_no_query() -> None:
    handle = JobHandle(backend="slurm+local", resource="localhost", id="1_0")
    assert str(handle) == "slurm+local://localhost/1_0"
    assert JobHandle.parse(str(handle)) == handle


def test_handle_is_frozen_and_hashable() -> None:
    with pytest.raises(ValidationError):
        HANDLE.id = "other"  # type: ignore[misc]
    assert len({HANDLE, JobHandle.parse(str(HANDLE))}) == 1


# No lone surrogates and no NUL: the models refuse both in any text (test_properties.py).
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=60,
)


@given(
    backend=st.from_regex(r"\A[a-z][a-z0-9+.-]{0,15}\Z"),
    resource=_text,
    job_id=_text,
    routing=st.one_of(st.just(""), _text),
)
def test_handle_compact_form_round_trips_exactly(
    backend: str, resource: str, job_id: str, routing: str
) -> None:
    fields = {"backend": backend, "resource": resource, "id": job_id, "routing": routing}
    probe = JobHandle.model_construct(**fields)
    if len(str(probe)) > HANDLE_MAX_LENGTH:  # only the length rule may refuse these
        with pytest.raises(ValidationError, match="more than 255"):
            JobHandle(**fields)
        return
    handle = JobHandle(**fields)
    text = str(handle)
    assert len(text) <= HANDLE_MAX_LENGTH
    assert JobHandle.parse(text) == handle


def test_handle_longer_than_a_dirac_column_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than 255"):
        JobHandle(backend="slurm+ssh", resource="r", id="1_0", routing="x" * 250)


def test_handle_at_the_limit_is_accepted() -> None:
    prefix = len(str(JobHandle(backend="slurm+ssh", resource="r", id="1_0", routing="x")))
    handle = JobHandle(backend="slurm+ssh", resource="r", id="1_0", routing="x" * (256 - prefix))
    assert len(str(handle)) == HANDLE_MAX_LENGTH
    assert JobHandle.parse(str(handle)) == handle


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backend": "Slurm SSH"}, "backend"),
        ({"id": ""}, "id"),
        ({"resource": ""}, "resource"),
    ],
)
def test_handle_validation_names_the_field(kwargs: dict[str, str], field: str) -> None:
    data = {"backend": "slurm+ssh", "resource": "h", "id": "1_0", **kwargs}
    with pytest.raises(ValidationError) as info:
        JobHandle(**data)
    assert _field_of(info.value) == (field,)


@pytest.mark.parametrize("text", ["no-scheme", "slurm+ssh://host-without-id"])
def test_parse_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a job handle"):
        JobHandle.parse(text)


# --- resources and files -----------------------------------------------------------------


@pytest.mark.parametrize("nodes", ["1", "2", "2-4", "10-10"])
def test_nodes_accepts_counts_and_ranges(nodes: str) -> None:
    assert Resources(nodes=nodes).nodes == nodes


@pytest.mark.parametrize("nodes", ["0", "4-2", "two", "2-", "-2", ""])
def test_nodes_refuses_bad_values_naming_the_field(nodes: str) -> None:
    with pytest.raises(ValidationError) as info:
        Resources(nodes=nodes)
    assert _field_of(info.value) == ("nodes",)


@pytest.mark.parametrize(("field", "value"), [("cpus", 0), ("memory_mb", 0), ("gpus", -1)])
def test_resource_bounds_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as info:
        Resources(**{field: value})
    assert _field_of(info.value) == (field,)


def test_resources_refuse_unknown_keys() -> None:
    with pytest.raises(ValidationError) as info:
        Resources.model_validate({"cpu": 2})
    assert _field_of(info.value) == ("cpu",)


@pytest.mark.parametrize("name", ["/etc/passwd", "../up", "a/../../b", "", "nul\x00"])
def test_file_names_must_stay_inside_the_working_directory(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        FileRef(name=name, source="/tmp/x")
    assert _field_of(info.value) == ("name",)


def test_url_inputs_are_recognised() -> None:
    assert FileRef(name="a", source="https://example.org/a").is_url
    assert not FileRef(name="a", source="/data/a").is_url


def test_output_patterns_must_be_relative() -> None:
    with pytest.raises(ValidationError) as info:
        OutputMember(pattern="/abs/*.txt")
    assert _field_of(info.value) == ("pattern",)


def test_output_spec_everything_wants_collection() -> None:
    assert OutputSpec.everything().wants_collection
    assert not OutputSpec().wants_collection
    assert not OutputSpec(
        members=(OutputMember(pattern="a", destination="https://se/a"),)
    ).wants_collection
    assert OutputSpec(members=(OutputMember(pattern="a"),)).wants_collection


# --- copies and specs --------------------------------------------------------------------


def test_copy_vars_keep_secrets_out_of_repr_and_json() -> None:
    copy = CopyVars(environment={"STAMP": "s1"}, secrets={"TOKEN": b"hunter2"})
    assert "hunter2" not in repr(copy)
    assert "hunter2" not in copy.model_dump_json()
    assert copy.secrets["TOKEN"].get_secret_value() == b"hunter2"
    assert isinstance(copy.secrets["TOKEN"], SecretBytes)


@pytest.mark.parametrize("field", ["environment", "secrets"])
def test_copy_variable_names_must_be_identifiers(field: str) -> None:
    value = "x" if field == "environment" else b"x"
    with pytest.raises(ValidationError) as info:
        CopyVars.model_validate({field: {"BAD-NAME": value}})
    assert _field_of(info.value) == (field,)
    assert "BAD-NAME" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"secrets": {"bad-name": b"TOPSECRET-7f3a"}},
        {"secrets": {"TOKEN": ["TOPSECRET-7f3a"]}},
        {"secrets": {"TOKEN": b"x"}, "secret": {"TOKEN": "TOPSECRET-7f3a"}},
    ],
)
def test_copy_vars_errors_never_echo_a_secret(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        CopyVars.model_validate(data)
    assert "TOPSECRET-7f3a" not in str(info.value)
    assert "TOPSECRET-7f3a" not in repr(info.value)


def test_spec_refuses_duplicate_input_names() -> None:
    with pytest.raises(ValidationError, match=r"inputs: duplicate names \['a'\]"):
        SubmissionSpec(
            executable="/bin/true",
            inputs=(FileRef(name="a", source="/x"), FileRef(name="a", source="/y")),
        )


def test_spec_environment_names_are_checked() -> None:
    with pytest.raises(ValidationError) as info:
        SubmissionSpec(executable="/bin/true", environment={"1X": "v"})
    assert _field_of(info.value) == ("environment",)


def test_spec_round_trips_through_json() -> None:
    spec = SubmissionSpec(
        executable="/bin/echo",
        arguments=("a b", "$HOME", "é\n"),
        resources=Resources(cpus=2, nodes="2-4", whole_node=True),
        outputs=OutputSpec(members=(OutputMember(pattern="*.json"),)),
        environment={"A": "1"},
        tag="vo",
    )
    assert SubmissionSpec.model_validate_json(spec.model_dump_json()) == spec


# --- results -----------------------------------------------------------------------------


def test_submission_accounts_for_every_copy() -> None:
    other = HANDLE.model_copy(update={"id": "4242_8"})
    sub = Submission(handles={0: HANDLE, 2: other}, failures={1: "refused"})
    assert sub.count == 3


def test_submission_refuses_two_copies_with_one_job_id() -> None:
    # Every result map is keyed by handle.id: two copies sharing one would collapse into one.
    twin = HANDLE.model_copy(update={"routing": "other/8"})
    with pytest.raises(ValidationError, match=r"copies 0 and 2 have the same job id '4242_7'"):
        Submission(handles={0: HANDLE, 2: twin}, failures={1: "refused"})


@pytest.mark.parametrize(
    ("handles", "failures", "message"),
    [
        ({0: HANDLE}, {0: "x"}, "both submitted and failed"),
        ({0: HANDLE, 2: HANDLE}, {}, "not 0..n-1"),
    ],
)
def test_submission_refuses_dropped_or_double_copies(
    handles: dict[int, JobHandle], failures: dict[int, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Submission(handles=handles, failures=failures)


def test_failed_outcome_needs_a_reason() -> None:
    with pytest.raises(ValidationError, match="needs a reason"):
        OpOutcome(ok=False)
    assert OpOutcome(ok=True).reason is None


def test_final_states() -> None:
    final = {s for s in JobStatus if s.is_final}
    assert final == {JobStatus.DONE, JobStatus.FAILED, JobStatus.ABORTED}
    assert JobStatus("Waiting") is JobStatus.WAITING  # DIRAC names are the values


def test_load_counts_total_and_bounds() -> None:
    assert LoadCounts(running=3, waiting=2).total == 5
    with pytest.raises(ValidationError) as info:
        LoadCounts(running=-1, waiting=0)
    assert _field_of(info.value) == ("running",)


def test_job_output_holds_paths() -> None:
    out = JobOutput(root=Path("d/1"), stdout=Path("d/1.out"), stderr=None, files=(Path("d/1/a"),))
    assert out.log is None
    assert JobOutput.model_validate_json(out.model_dump_json()) == out


@pytest.mark.parametrize("tag", ["\x00", "vo\nqueue", "a\x7fb"])
def test_a_tag_is_one_printable_line(tag: str) -> None:
    with pytest.raises(ValidationError) as info:
        SubmissionSpec(executable="/bin/true", tag=tag)
    assert info.value.errors()[0]["loc"] == ("tag",)
