"""A submit above the cluster's MaxArraySize, end to end: 5000 copies, each with its own
environment and secret, become several arrays; every handle is answered, half are killed while
pending (inside their array records) and only those read Aborted; copies far past the first
array still find their own environment and secret when they run; purge leaves nothing."""

from __future__ import annotations

import os
import shlex
import uuid
from pathlib import Path
from typing import Any

import pytest

import intercede
from intercede import CopyVars, JobOutput, JobStatus, OpOutcome, SSHBatchConfig, SubmissionSpec
from tests.e2e.jobs import all_final, build, script, wait

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

N = 5000


@pytest.fixture
def config(slurm_cluster: Any, remote_workdir: str) -> SSHBatchConfig:
    base = intercede.load_config(slurm_cluster.client_config_path).queues["main"]
    assert isinstance(base, SSHBatchConfig)
    return base.model_copy(
        update={
            "work_root": remote_workdir,
            "job_name": f"bulk-{uuid.uuid4().hex[:10]}",
            "submit_extra": ("--hold",),
        }
    )


async def test_five_thousand_copies_above_max_array_size(
    config: SSHBatchConfig, credentials: intercede.CredentialProvider, tmp_path: Path
) -> None:
    exe = script(tmp_path, 'echo "$INTERCEDE_COPY_INDEX $STAMP $(cat "$INTERCEDE_SECRET_TOKEN")"\n')
    spec = SubmissionSpec(executable=exe)
    tokens = [os.urandom(16).hex() for _ in range(N)]
    copies = [
        CopyVars(environment={"STAMP": f"s{i}"}, secrets={"TOKEN": tokens[i].encode()})
        for i in range(N)
    ]
    async with build(config, credentials) as backend:
        shell = backend.transport

        async def sh(command: str) -> str:
            done = await shell.run(["sh", "-c", command], timeout=120)
            assert done.rc == 0, done.stderr
            return done.stdout.decode()

        limit = int((await sh("scontrol show config | sed -n 's/^MaxArraySize *= *//p'")).strip())
        assert limit < N  # the point of the test: more copies than one array may hold
        submission = await backend.submit(spec, copies)
        try:
            assert submission.failures == {}
            assert sorted(submission.handles) == list(range(N))
            handles = [submission.handles[i] for i in range(N)]
            arrays = {h.id.split("_")[0] for h in handles}
            assert len(arrays) == -(-N // limit)
            batch = handles[0].routing.split("/")[0]
            batch_dir = f"{config.work_root}/{batch}"
            # the submit wrote the same files as a submit of one copy: none per copy
            entries = set((await sh(f"ls -A {shlex.quote(batch_dir)}")).split())
            assert entries == {
                "job.sh",
                "manifest.json",
                "bin",
                "logs",
                "copies",
                "secrets",
                "chunks",
            }

            status = await backend.get_status(handles)
            assert len(status) == N
            assert set(status.values()) == {JobStatus.WAITING}

            doomed, spared = handles[::2], handles[1::2]
            killed = await backend.kill(doomed)
            assert killed == {h.id: OpOutcome(ok=True) for h in doomed}
            status = await backend.get_status(handles)
            assert len(status) == N
            assert {status[h.id] for h in doomed} == {JobStatus.ABORTED}
            assert {status[h.id] for h in spared} == {JobStatus.WAITING}

            # a copy that never started has no directory: its output is empty, not gone
            unstarted = await backend.get_output([doomed[1], spared[1]], tmp_path / "pending")
            for handle in (doomed[1], spared[1]):
                empty = unstarted[handle.id]
                assert isinstance(empty, JobOutput), empty
                assert (empty.stdout, empty.stderr, empty.files) == (None, None, ())

            # copies in the first, a middle and the last array run with their own records
            runners = [spared[0], spared[len(spared) // 2], spared[-1]]
            await sh("scontrol release " + " ".join(h.id for h in runners))
            await wait(backend, runners, all_final, timeout=180)
            outputs = await backend.get_output(runners, tmp_path / "out")
            for handle in runners:
                index = int(handle.routing.split("/")[1])
                out = outputs[handle.id]
                assert isinstance(out, JobOutput), out
                assert out.stdout is not None
                assert out.stdout.read_text() == f"{index} s{index} {tokens[index]}\n"

            rest = [h for h in spared if h not in runners]
            assert all(o.ok for o in (await backend.kill(rest)).values())
            purged = await backend.purge(handles)
            assert len(purged) == N
            assert all(o.ok for o in purged.values()), [o for o in purged.values() if not o.ok][:3]
            gone = await sh(f"test -e {shlex.quote(batch_dir)} && echo there || echo gone")
            assert gone.strip() == "gone"

        finally:  # a failure must not leave 5000 held jobs filling MaxJobCount for other tests
            await sh(f"scancel -u $(id -un) -n {shlex.quote(config.job_name)} || true")
