"""Logging against the live cluster: every remote operation is logged at DEBUG on an
``intercede.*`` logger, and no secret reaches any log record, whoever logs it (asyncssh
included), while real secrets travel: the SSH private key, a job secret, the stamp's sibling."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import intercede
import intercede.sync
from harness.cluster import Cluster
from intercede import CopyVars, JobStatus, OutputSpec, SubmissionSpec

pytestmark = pytest.mark.e2e

PAYLOAD = '#!/bin/sh\necho "stamp $STAMP"\ntest -s "$INTERCEDE_SECRET_TOKEN" && echo has-secret\n'


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_record() -> Iterator[list[logging.LogRecord]]:
    """Every record of every logger at DEBUG (asyncssh's too) while the test runs."""
    keep = _Keep()
    root = logging.getLogger()
    touched = {name: logging.getLogger(name).level for name in ("", "intercede", "asyncssh")}
    root.addHandler(keep)
    for name in touched:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield keep.records
    finally:
        root.removeHandler(keep)
        for name, level in touched.items():
            logging.getLogger(name).setLevel(level)


def _text(record: logging.LogRecord) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    text = formatter.format(record)
    return text + repr(record.args)


def test_debug_logs_every_operation_and_never_a_secret(
    slurm_cluster: Cluster, tmp_path: Path, every_record: list[logging.LogRecord]
) -> None:
    site = intercede.load_config(slurm_cluster.client_config_path)
    key_pem = site.credential_files["ssh_key_file"].read_text()
    key_lines = [line for line in key_pem.splitlines() if line and "PRIVATE KEY" not in line]
    tokens = [secrets.token_hex(24).encode() for _ in range(2)]
    script = tmp_path / "payload.sh"
    script.write_text(PAYLOAD)
    script.chmod(0o755)
    with intercede.sync.backend(site.queues["main"], site.credentials_for("main")) as ce:
        assert isinstance(ce, intercede.sync.Explainer)
        assert isinstance(ce, intercede.sync.Purgeable)
        assert isinstance(ce, intercede.sync.LoadReporter)
        assert isinstance(ce, intercede.sync.OutputRetriever)
        counts = ce.counts(timeout=60)
        assert counts.queue_state == "UP"
        sub = ce.submit(
            SubmissionSpec(executable=str(script), outputs=OutputSpec.everything()),
            [
                CopyVars(environment={"STAMP": uuid.uuid4().hex}, secrets={"TOKEN": token})
                for token in tokens
            ],
            timeout=120,
        )
        handles = list(sub.handles.values())
        explained = ce.explain(handles, timeout=60)
        assert set(explained) == {h.id for h in handles}
        statuses = intercede.sync.wait_for_jobs(ce, handles, deadline_s=180, first_s=0.25)
        assert set(statuses.values()) == {JobStatus.DONE}
        outputs = ce.get_output(handles, tmp_path / "out", timeout=120)
        for output in outputs.values():
            assert isinstance(output, intercede.JobOutput)
            assert output.stdout is not None
            assert "has-secret" in output.stdout.read_text()
        assert all(o.ok for o in ce.purge(handles, timeout=60).values())

    texts = [_text(r) for r in every_record]
    assert texts, "nothing was logged at DEBUG"
    assert any(r.name.startswith("asyncssh") for r in every_record)  # asyncssh's log is covered
    for token in tokens:
        assert not [t for t in texts if token.decode() in t]
    for line in key_lines:
        assert not [t for t in texts if line in t]
    ours = [r.getMessage() for r in every_record if r.name.startswith("intercede.")]
    for op in ("counts", "submit", "explain", "get_status", "get_output", "purge"):
        assert any(m.startswith(f"{op} on ") and "round trip(s)" in m for m in ours), (op, ours)
    assert any("2 job(s)" in m for m in ours if m.startswith("submit on "))
    assert any("array chunk(s)" in m for m in ours)
    assert any("connected (connection 1)" in m for m in ours)
    assert any(m.startswith("pulling credentials") for m in ours)
    assert any(m.startswith("waited ") for m in ours)
