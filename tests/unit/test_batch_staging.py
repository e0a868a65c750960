"""The submit tar stream and the batch script, unpacked and run by a real ``sh`` locally.

The cluster runs the very same files; running them here (with the two variables Slurm would
set) checks byte-exact arguments and per-copy environments in milliseconds, as a property.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intercede import (
    CopyVars,
    FileRef,
    LocalBatchConfig,
    OutputMember,
    OutputSpec,
    SpecificationRejectedError,
    SubmissionSpec,
)
from intercede._batch import slurm
from intercede._batch.staging import (
    build_batch_archive,
    check_submittable,
    escapes,
    is_contained,
    matches_member,
)

BATCH = "0123456789abcdef0123456789abcdef"
PRINT_ARGS = (
    "#!/bin/sh\n"
    ": > args.bin\n"
    'for a in "$@"; do printf \'%s\\0\' "$a" >> args.bin; done\n'
    "printf '%s' \"$STAMP\" > stamp.bin\n"
)


def _config(**extra: object) -> LocalBatchConfig:
    return LocalBatchConfig.model_validate(
        {"kind": "batch", "transport": "local", "work_root": "/w", **extra}
    )


def _stage(
    tmp: Path, spec: SubmissionSpec, copies: list[CopyVars], config: LocalBatchConfig | None = None
) -> Path:
    batch_dir = tmp / BATCH
    batch_dir.mkdir()
    script = slurm.batch_script(
        spec,
        config or _config(),
        str(batch_dir),
        Path(spec.executable).name,
        has_inputs=bool(spec.inputs),
    )
    archive = build_batch_archive(spec, copies, script=script)
    subprocess.run(["tar", "-x", "-p", "-f", "-", "-C", str(batch_dir)], input=archive, check=True)
    return batch_dir


def _run_copy(batch_dir: Path, task: int, offset: int = 0) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_JOB_ID": "7"}
    return subprocess.run(
        ["bash", str(batch_dir / "job.sh"), str(offset)], env=env, capture_output=True, check=False
    )


@pytest.fixture
def printer(tmp_path: Path) -> Path:
    path = tmp_path / "printer.sh"
    path.write_text(PRINT_ARGS)
    path.chmod(0o755)
    return path


_arg = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(arguments=st.lists(_arg, max_size=6), stamp=_arg)
def test_arguments_and_environment_reach_the_job_byte_exact(
    tmp_path_factory: pytest.TempPathFactory, printer: Path, arguments: list[str], stamp: str
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    spec = SubmissionSpec(executable=str(printer), arguments=tuple(arguments))
    batch_dir = _stage(tmp, spec, [CopyVars(environment={"STAMP": stamp})])
    done = _run_copy(batch_dir, 0)
    assert done.returncode == 0, done.stdout
    work = batch_dir / "0" / "work"
    seen = (work / "args.bin").read_bytes()
    assert seen == b"".join(a.encode() + b"\0" for a in arguments)
    assert (work / "stamp.bin").read_bytes() == stamp.encode()


def test_each_copy_gets_its_own_values_and_secret_file(tmp_path: Path) -> None:
    exe = tmp_path / "payload.sh"
    exe.write_text(
        '#!/bin/sh\necho "$STAMP $INTERCEDE_COPY_INDEX $(cat "$INTERCEDE_SECRET_TOKEN")"\n'
        "env > env.txt\necho to-stderr >&2\nexit 3\n"
    )
    exe.chmod(0o755)
    spec = SubmissionSpec(executable=str(exe), environment={"COMMON": "c"})
    copies = [
        CopyVars(environment={"STAMP": f"s{i}"}, secrets={"TOKEN": f"secret-{i}".encode()})
        for i in range(3)
    ]
    batch_dir = _stage(tmp_path, spec, copies)
    for i in range(3):
        task, offset = (i, 0) if i < 2 else (0, 2)  # copy 2 as task 0 of a second chunk
        done = _run_copy(batch_dir, task, offset)
        assert done.returncode == 3  # the payload's exit code is the job's
        assert b"exit code 3" in done.stdout  # the wrapper's log (Slurm's output file)
        copy_dir = batch_dir / str(i)
        assert (copy_dir / "stdout").read_text() == f"s{i} {i} secret-{i}\n"
        assert (copy_dir / "stderr").read_text() == "to-stderr\n"
        secret = copy_dir / "secrets" / "TOKEN"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        env_listing = (copy_dir / "work" / "env.txt").read_text()
        assert f"secret-{i}" not in env_listing
        assert f"INTERCEDE_SECRET_TOKEN={secret}" in env_listing
        assert "COMMON=c" in env_listing
    script = (batch_dir / "job.sh").read_text()
    assert "secret-" not in script
    assert stat.S_IMODE((batch_dir / "0").stat().st_mode) == 0o700


def test_a_secret_shared_by_copies_travels_once_and_each_copy_gets_it(tmp_path: Path) -> None:
    """DIRAC gives every pilot of a submit the same proxy: the batch's secrets file holds it
    once, the later copies point at the first one's line, and every copy still gets its own
    0600 file with the exact bytes (a per-copy token next to it stays per copy)."""
    exe = tmp_path / "payload.sh"
    exe.write_text('#!/bin/sh\ncat "$INTERCEDE_SECRET_PROXY" "$INTERCEDE_SECRET_TOKEN"\n')
    exe.chmod(0o755)
    proxy = bytes(range(256)) * 40  # 10 KiB, every byte value, newlines included
    copies = [CopyVars(secrets={"PROXY": proxy, "TOKEN": f"t{i}".encode()}) for i in range(50)]
    batch_dir = _stage(tmp_path, SubmissionSpec(executable=str(exe)), copies)
    records = (batch_dir / "secrets").read_bytes()
    assert len(records) < len(proxy) * 2  # once (base64), not fifty times
    assert records.splitlines()[7] == b"PROXY:@0 TOKEN:" + base64.b64encode(b"t7")
    for i in (0, 1, 49):
        done = _run_copy(batch_dir, i)
        assert done.returncode == 0, done.stdout
        assert (batch_dir / str(i) / "stdout").read_bytes() == proxy + f"t{i}".encode()
        secret = batch_dir / str(i) / "secrets" / "PROXY"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_inputs_are_staged_once_and_copied_into_each_working_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.txt").write_text("A")
    single = tmp_path / "single.bin"
    single.write_bytes(b"\x00\x01")
    exe = tmp_path / "x.sh"
    exe.write_text("#!/bin/sh\ncat dir/sub/a.txt in.bin > seen\n")
    exe.chmod(0o755)
    spec = SubmissionSpec(
        executable=str(exe),
        inputs=(FileRef(name="dir", source=str(data)), FileRef(name="in.bin", source=str(single))),
    )
    batch_dir = _stage(tmp_path, spec, [CopyVars(), CopyVars()])
    for i in range(2):
        assert _run_copy(batch_dir, i).returncode == 0
        assert (batch_dir / str(i) / "work" / "seen").read_bytes() == b"A\x00\x01"
    archive = build_batch_archive(spec, [CopyVars()] * 50, script="")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert names.count("inputs/in.bin") == 1  # once per batch, not per copy


def test_stdout_cannot_collide_with_a_payload_file_named_stdout(tmp_path: Path) -> None:
    exe = tmp_path / "x.sh"
    exe.write_text("#!/bin/sh\necho real\necho payload > stdout\n")
    exe.chmod(0o755)
    batch_dir = _stage(tmp_path, SubmissionSpec(executable=str(exe)), [CopyVars()])
    assert _run_copy(batch_dir, 0).returncode == 0
    assert (batch_dir / "0" / "stdout").read_text() == "real\n"
    assert (batch_dir / "0" / "work" / "stdout").read_text() == "payload\n"


# --- refusals at submit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"inputs": (FileRef(name="a", source="https://x/a"),)}, "inputs[0].source"),
        ({"inputs": (FileRef(name="a", source="/nonexistent/a"),)}, "inputs[0].source"),
        (
            {
                "outputs": OutputSpec(
                    members=(
                        OutputMember(pattern="ok"),
                        OutputMember(pattern="a", destination="https://se/a"),
                    )
                )
            },
            "outputs.members[1].destination",
        ),
        ({"container_image": "alpine"}, "container_image"),
        ({"executable": "/nonexistent/pilot.sh"}, "executable"),
        ({"executable": "https://x/pilot.sh"}, "executable"),
    ],
)
def test_unsupported_specs_are_refused_naming_the_field(
    printer: Path, change: dict[str, object], field: str
) -> None:
    spec = SubmissionSpec.model_validate({"executable": str(printer), **change})
    with pytest.raises(SpecificationRejectedError) as info:
        check_submittable(spec, _config())
    assert info.value.field == field


# --- containment and patterns ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("a/b/c", True),
        ("/etc/x", False),
        ("a/../../x", False),
        ("", False),
        ("a\x00b", False),
    ],
)
def test_is_contained(name: str, ok: bool) -> None:
    assert is_contained(name) is ok


@pytest.mark.parametrize(
    ("path", "target", "escaping"),
    [
        ("a", "b", False),
        ("d/a", "../b", False),
        ("d/a", "../../b", True),
        ("a", "/etc/passwd", True),
        ("a", "..", True),
        ("a", "", True),
    ],
)
def test_escaping_links(path: str, target: str, escaping: bool) -> None:
    assert escapes(path, target) is escaping


@pytest.mark.parametrize(
    ("pattern", "path", "selected"),
    [
        ("result.json", "result.json", True),
        ("*.json", "result.json", True),
        ("*.json", "sub/result.json", False),
        ("**/*.json", "sub/deep/result.json", True),
        ("out", "out/a/b.txt", True),  # a directory brings its tree
        ("out/*.txt", "out/a.txt", True),
        ("./out/a.txt", "out/a.txt", True),
        ("o?t", "out", True),
        ("other", "out", False),
        ("**/x", "a/y", False),
        ("**/x", "a/x", True),
        ("a/**/b/c", "a/q/r/b/c", True),
        ("a/**/b/c", "a/q/c", False),
        ("a//b", "a/b", True),
        (".", "a", False),
    ],
)
def test_matches_member(pattern: str, path: str, selected: bool) -> None:
    assert matches_member(pattern, path) is selected


def test_a_symlink_cycle_in_an_input_directory_is_refused_naming_the_input(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.txt").write_text("A")
    (data / "sub" / "loop").symlink_to("..")  # walking with links followed never ends
    spec = SubmissionSpec(
        executable="/bin/true",
        inputs=(FileRef(name="ok", source="/bin/true"), FileRef(name="d", source=str(data))),
    )
    with pytest.raises(SpecificationRejectedError) as info:
        build_batch_archive(spec, [CopyVars()], script="")
    assert info.value.field == "inputs[1].source"
    assert str(info.value) == (
        f"inputs[1].source: {data / 'sub' / 'loop'} leads back to a directory that contains "
        "it (a symlink cycle)"
    )


def test_the_same_directory_reached_twice_without_a_cycle_is_staged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    (data / "real" / "a.txt").write_text("A")
    (data / "alias").symlink_to("real")
    spec = SubmissionSpec(executable="/bin/true", inputs=(FileRef(name="d", source=str(data)),))
    archive = build_batch_archive(spec, [CopyVars()], script="")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = set(tar.getnames())
    assert {"inputs/d/real/a.txt", "inputs/d/alias/a.txt"} <= names


def test_a_dangling_link_in_the_inputs_is_refused_naming_the_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "gone").symlink_to("nowhere")
    spec = SubmissionSpec(executable="/bin/true", inputs=(FileRef(name="d", source=str(data)),))
    with pytest.raises(SpecificationRejectedError) as info:
        build_batch_archive(spec, [CopyVars()], script="")
    assert info.value.field == "inputs[0].source"
    assert str(info.value) == (
        f"inputs[0].source: cannot read {data / 'gone'}: No such file or directory"
    )
