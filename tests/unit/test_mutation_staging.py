"""What ``staging.check_submittable`` says for each refusal, word for word: a caller (and a
DIRAC adapter passing it on as ``S_ERROR``) shows the message, so it is behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercede import (
    FileRef,
    LocalBatchConfig,
    OutputMember,
    OutputSpec,
    SpecificationRejectedError,
    SubmissionSpec,
)
from intercede._batch.staging import check_submittable


def _config(**extra: object) -> LocalBatchConfig:
    return LocalBatchConfig.model_validate(
        {"kind": "batch", "transport": "local", "work_root": "/w", **extra}
    )


@pytest.fixture
def exe(tmp_path: Path) -> str:
    path = tmp_path / "x.sh"
    path.write_text("#!/bin/sh\n")
    return str(path)


def _refusal(spec: SubmissionSpec, config: LocalBatchConfig | None = None) -> str:
    with pytest.raises(SpecificationRejectedError) as caught:
        check_submittable(spec, config or _config())
    return str(caught.value)


def test_each_refusal_names_its_field_and_says_why(exe: str, tmp_path: Path) -> None:
    assert _refusal(SubmissionSpec(executable=exe, container_image="alpine")) == (
        "container_image: this backend has no container_launcher configured"
    )
    assert _refusal(SubmissionSpec(executable="https://example.org/x.sh")) == (
        "executable: must be a local file; this backend stages files itself"
    )
    missing = str(tmp_path / "nope.sh")
    assert _refusal(SubmissionSpec(executable=missing)) == (
        f"executable: {missing} is not a readable file"
    )
    url = FileRef(name="in", source="https://example.org/in")
    assert _refusal(SubmissionSpec(executable=exe, inputs=(url,))) == (
        "inputs[0].source: URL inputs need a stager this backend does not have; stage a local copy"
    )
    gone = FileRef(name="in", source=str(tmp_path / "gone"))
    present = FileRef(name="ok", source=exe)
    assert _refusal(SubmissionSpec(executable=exe, inputs=(present, gone))) == (
        f"inputs[1].source: {tmp_path / 'gone'} does not exist"
    )
    members = (OutputMember(pattern="a"), OutputMember(pattern="b", destination="s3://x/b"))
    assert _refusal(SubmissionSpec(executable=exe, outputs=OutputSpec(members=members))) == (
        "outputs.members[1].destination: this backend cannot upload outputs; leave "
        "destination empty and collect with get_output"
    )


def test_a_launcher_allows_an_image_and_local_files_pass(exe: str) -> None:
    spec = SubmissionSpec(executable=exe, container_image="alpine")
    check_submittable(spec, _config(container_launcher="run {image} {command}"))
    check_submittable(
        SubmissionSpec(executable=exe, inputs=(FileRef(name="i", source=exe),)), _config()
    )


def test_staged_input_modes_follow_any_execute_bit(tmp_path: Path) -> None:
    import io
    import tarfile

    from intercede import CopyVars
    from intercede._batch.staging import build_batch_archive

    inputs = []
    for name, mode in (("tool", 0o755), ("data", 0o644), ("other_x", 0o601)):
        path = tmp_path / name
        path.write_text(name)
        path.chmod(mode)
        inputs.append(FileRef(name=name, source=str(path)))
    spec = SubmissionSpec(executable=str(tmp_path / "tool"), inputs=tuple(inputs))
    with tarfile.open(fileobj=io.BytesIO(build_batch_archive(spec, [CopyVars()], script=""))) as t:
        modes = {m.name: m.mode for m in t.getmembers() if m.name.startswith("inputs/")}
    assert modes == {"inputs/tool": 0o700, "inputs/data": 0o600, "inputs/other_x": 0o700}


def test_long_input_names_stay_in_plain_gnu_headers(tmp_path: Path) -> None:
    from intercede import CopyVars
    from intercede._batch.staging import build_batch_archive

    data = tmp_path / "d"
    deep = data / ("x" * 90) / ("y" * 90)
    deep.mkdir(parents=True)
    (deep / "f").write_text("f")
    spec = SubmissionSpec(executable=str(deep / "f"), inputs=(FileRef(name="d", source=str(data)),))
    archive = build_batch_archive(spec, [CopyVars()], script="")
    assert b"././@LongLink" in archive  # GNU's long-name record, not a PAX header
    assert b"PaxHeader" not in archive
