"""Every public parser and validator, fed anything: it answers with a typed error naming the
field, or with a value that round-trips exactly. Never another exception type, never a hang
(hypothesis' deadline fails any example slower than a second).

Typed errors: pydantic's ``ValidationError`` (whose ``loc`` names the field) for the models,
``ConfigurationError`` with ``field`` for configuration, ``SpecificationRejectedError`` with
``field`` for what a backend refuses at submit.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from intercede import (
    ConfigurationError,
    CopyVars,
    JobHandle,
    OutputSpec,
    SpecificationRejectedError,
    SSHBatchConfig,
    SubmissionSpec,
    load_config,
    parse_config,
)
from intercede._batch import slurm
from intercede._batch.staging import check_sizes, check_submittable

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

PROFILE = settings(
    max_examples=150,
    deadline=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text that includes the hard cases: NUL, newlines, lone surrogates, percent escapes, '?'.
nasty = st.lists(
    st.one_of(
        st.characters(codec=None),
        st.sampled_from(["\x00", "\n", "\ud800", "\udcff", "%", "?", "/", "://", "%0A", "|"]),
    ),
    max_size=20,
).map("".join)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty,
)
anything = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty, inner, max_size=4)),
    max_leaves=12,
)


def _attempt(call: Callable[[], T], error_type: type[E]) -> tuple[T | None, E | None]:
    """``(result, None)`` or ``(None, error)`` when ``call`` raised ``error_type``; any other
    exception propagates and fails the test."""
    try:
        return call(), None
    except error_type as error:
        return None, error


def _located(error: ValidationError) -> None:
    """pydantic names the field of each problem (an empty loc is the model as a whole)."""
    for problem in error.errors(include_input=False):
        assert isinstance(problem["loc"], tuple)
        assert problem["msg"]


# --- JobHandle ------------------------------------------------------------------------------

handle_fields = st.fixed_dictionaries(
    {
        "backend": st.one_of(
            st.just("slurm+ssh"), st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True), nasty
        ),
        "resource": st.one_of(st.just("submit@ce.example.org:22"), nasty),
        "id": st.one_of(st.from_regex(r"[0-9]{1,6}_[0-9]{1,4}", fullmatch=True), nasty),
        "routing": st.one_of(st.just(""), nasty),
    }
)  # fmt: skip


@PROFILE
@given(handle_fields)
def test_a_handle_is_refused_with_a_validation_error_or_round_trips_both_ways(
    fields: dict[str, str],
) -> None:
    try:
        handle = JobHandle(**fields)
    except ValidationError as error:
        _located(error)
        return
    assert JobHandle.parse(str(handle)) == handle
    assert JobHandle.model_validate_json(handle.model_dump_json()) == handle
    assert len(str(handle)) <= 255


@PROFILE
@given(st.one_of(nasty, st.builds(lambda a, b: f"{a}://{b}", nasty, nasty)))
def test_parsing_any_text_gives_a_handle_that_prints_back_or_a_value_error(text: str) -> None:
    try:
        handle = JobHandle.parse(text)
    except ValueError:
        return
    assert JobHandle.parse(str(handle)) == handle


@PROFILE
@given(st.one_of(nasty, anything.map(lambda value: json.dumps(value, default=str))))
def test_json_of_anything_is_a_handle_or_a_validation_error(text: str) -> None:
    try:
        handle = JobHandle.model_validate_json(text)
    except ValidationError as error:
        _located(error)
        return
    assert JobHandle.model_validate_json(handle.model_dump_json()) == handle


# --- SubmissionSpec, CopyVars, OutputSpec ---------------------------------------------------

env = st.dictionaries(
    st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), nasty),
    nasty,
    max_size=3,
)
spec_data = st.fixed_dictionaries(
    {"executable": st.one_of(st.just("/bin/true"), nasty)},
    optional={
        "arguments": st.lists(nasty, max_size=3),
        "environment": env,
        "inputs": st.lists(st.fixed_dictionaries({"name": nasty, "source": nasty}), max_size=2),
        "outputs": st.fixed_dictionaries(
            {},
            optional={
                "members": st.lists(st.fixed_dictionaries({"pattern": nasty}), max_size=2),
                "include_unlisted": st.one_of(st.booleans(), scalar),
            },
        ),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "cpus": scalar,
                "nodes": st.one_of(
                    st.from_regex(r"[0-9]{1,3}(-[0-9]{1,3})?", fullmatch=True), nasty
                ),
                "memory_mb": scalar,
                "queue": st.one_of(st.none(), nasty),
            },
        ),
        "tag": st.one_of(st.none(), nasty),
        "container_image": st.one_of(st.none(), nasty),
        "unknown": scalar,
    },
)  # fmt: skip


@PROFILE
@given(spec_data)
def test_a_spec_is_refused_naming_the_field_or_round_trips_through_json(
    data: dict[str, Any],
) -> None:
    try:
        spec = SubmissionSpec.model_validate(data)
    except ValidationError as error:
        _located(error)
        return
    assert SubmissionSpec.model_validate_json(spec.model_dump_json()) == spec


@PROFILE
@given(spec_data, st.lists(env, min_size=1, max_size=2))
def test_the_backend_refuses_a_valid_spec_only_with_a_named_field(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any], envs: list[dict[str, str]]
) -> None:
    try:
        spec = SubmissionSpec.model_validate(data)
        copies = [CopyVars(environment=e) for e in envs]
    except ValidationError:
        return
    known = tmp_path_factory.mktemp("k") / "known_hosts"
    config = SSHBatchConfig(
        transport="ssh", host="h", user="u", known_hosts=known, work_root="/w",
        container_launcher="run {image} {command}",
    )  # fmt: skip

    def build() -> tuple[str, list[str]]:
        check_submittable(spec, config)
        check_sizes(spec, copies)
        script = slurm.batch_script(spec, config, "/w/b", "x", has_inputs=bool(spec.inputs))
        return script, slurm.sbatch_options(spec, config, "/w/b", "b" * 32)

    built, error = _attempt(build, SpecificationRejectedError)
    if error is not None:
        assert error.field
        return
    assert built is not None
    script, options = built
    script.encode("utf-8")  # what is sent must be writable as text
    assert all("\x00" not in option for option in options)


@PROFILE
@given(
    st.fixed_dictionaries(
        {},
        optional={"environment": env, "secrets": st.dictionaries(nasty, st.binary(), max_size=2)},
    )
)
def test_copy_vars_are_refused_naming_the_field_or_round_trip(data: dict[str, Any]) -> None:
    copy, error = _attempt(lambda: CopyVars.model_validate(data), ValidationError)
    if error is not None:
        _located(error)
        for secret in data.get("secrets", {}).values():
            if len(secret) > 3:
                assert repr(secret) not in str(error)
        return
    assert copy is not None
    assert CopyVars.model_validate(copy.model_dump()) == copy
    assert dict(copy.environment) == data.get("environment", {})


@PROFILE
@given(
    st.one_of(
        anything,
        st.fixed_dictionaries(
            {},
            optional={
                "members": st.lists(
                    st.fixed_dictionaries(
                        {"pattern": nasty}, optional={"destination": st.one_of(st.none(), nasty)}
                    ),
                    max_size=3,
                ),
                "include_unlisted": scalar,
            },
        ),
    )
)
def test_an_output_spec_is_refused_naming_the_field_or_round_trips(data: Any) -> None:
    try:
        spec = OutputSpec.model_validate(data)
    except ValidationError as error:
        _located(error)
        return
    assert OutputSpec.model_validate_json(spec.model_dump_json()) == spec


# --- configuration --------------------------------------------------------------------------

config_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.printable, max_size=20),
    st.lists(st.text(alphabet=string.printable, max_size=8), max_size=3),
)
config_keys = st.sampled_from([*sorted(SSHBatchConfig.model_fields), "credential", "port ", "kind"])


@PROFILE
@given(st.dictionaries(config_keys, config_values, max_size=6))
def test_a_config_file_loads_or_names_the_field(
    tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, Any]
) -> None:
    directory = tmp_path_factory.mktemp("cfg")
    queue = {
        "transport": "ssh",
        "host": "ce.example.org",
        "user": "submit",
        "known_hosts": "known_hosts",
        "work_root": "/scratch/w",
        **overrides,
    }
    path = directory / "queues.toml"
    path.write_text(tomli_w.dumps({"queues": {"main": queue}}))
    loaded, error = _attempt(lambda: load_config(path), ConfigurationError)
    if error is not None:
        assert (error.field or "").startswith("queues.main"), str(error)
        return
    assert loaded is not None
    config = loaded.queues["main"]
    assert parse_config(config.model_dump()) == config
    for name in ("command_timeout_s", "transfer_timeout_s"):
        value = getattr(config, name)
        assert math.isfinite(value)
        assert value > 0


@PROFILE
@given(st.dictionaries(st.text(max_size=10), config_values, max_size=4))
def test_a_credentials_table_loads_or_names_the_field(
    tmp_path_factory: pytest.TempPathFactory, table: dict[str, Any]
) -> None:
    directory = tmp_path_factory.mktemp("cred")
    path = directory / "queues.toml"
    document = {
        "credentials": table,
        "queues": {"main": {"transport": "local", "work_root": "/w"}},
    }
    path.write_text(tomli_w.dumps(document))
    loaded, error = _attempt(lambda: load_config(path), ConfigurationError)
    if error is not None:
        assert (error.field or "").startswith("credentials."), str(error)
        return
    assert loaded is not None
    assert all(isinstance(p, Path) for p in loaded.credential_files.values())
