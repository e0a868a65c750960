"""Rendering of the stack's Slurm configs and client config, without any container engine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from harness.config import (
    Partition,
    StackSpec,
    cluster_name,
    image_tag,
    known_hosts_line,
    load_variants,
    render_cgroup_conf,
    render_client_toml,
    render_slurm_conf,
    render_slurmdbd_conf,
    stack_hash,
)


def conf_lines(text: str, key: str) -> list[dict[str, str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            rows.append(dict(field.split("=", 1) for field in line.split()))
    return rows


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_slurm_conf_lists_every_worker_and_partition(workers: int) -> None:
    text = render_slurm_conf(StackSpec(workers=workers))
    nodes = conf_lines(text, "NodeName")
    assert [n["NodeName"] for n in nodes] == [f"worker{i}" for i in range(1, workers + 1)]
    assert all(n["CPUs"] == "2" and n["RealMemory"] == "1024" for n in nodes)
    parts = {p["PartitionName"]: p for p in conf_lines(text, "PartitionName")}
    assert set(parts) == {"main", "second"}
    assert parts["main"]["Default"] == "YES"
    assert parts["second"]["Default"] == "NO"
    for p in parts.values():
        assert p["Nodes"].split(",") == [n["NodeName"] for n in nodes]
        assert p["State"] == "UP"
    assert "$" not in text, "unrendered template placeholder"


def test_slurm_conf_has_the_container_safe_settings() -> None:
    text = render_slurm_conf(StackSpec(name="ci-1", slurmd_timeout=12))
    settings = dict(
        line.split("=", 1)
        for line in text.splitlines()
        if line and not line.startswith("#") and not line.startswith(("NodeName", "Partition"))
    )
    assert settings["ClusterName"] == "ci_1"
    assert settings["ProctrackType"] == "proctrack/linuxproc"
    assert settings["TaskPlugin"] == "task/none"
    assert settings["SelectType"] == "select/cons_tres"
    assert settings["SelectTypeParameters"] == "CR_Core"
    assert settings["ReturnToService"] == "2"
    assert settings["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert settings["AccountingStorageHost"] == "dbd"
    assert settings["MaxArraySize"] == "1001"
    assert settings["MinJobAge"] == "300"
    assert settings["SlurmdTimeout"] == "12"
    assert "defer" not in settings["SchedulerParameters"].split(",")


def test_partitions_can_be_split_and_first_is_default_when_none_is_marked() -> None:
    spec = StackSpec(
        workers=3,
        partitions=(
            Partition("a", nodes=("worker1",)),
            Partition("b", nodes=("worker2", "worker3")),
        ),
    )
    parts = {p["PartitionName"]: p for p in conf_lines(render_slurm_conf(spec), "PartitionName")}
    assert parts["a"]["Default"] == "YES"
    assert parts["a"]["Nodes"] == "worker1"
    assert parts["b"]["Nodes"] == "worker2,worker3"


def test_partition_with_unknown_node_is_refused() -> None:
    spec = StackSpec(workers=1, partitions=(Partition("a", nodes=("worker9",)),))
    with pytest.raises(ValueError, match="worker9"):
        render_slurm_conf(spec)


@pytest.mark.parametrize("name", ["", "UPPER", "x" * 41, "a b", "-lead"])
def test_bad_stack_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="stack name"):
        StackSpec(name=name)


def test_spec_needs_a_worker_and_one_default() -> None:
    with pytest.raises(ValueError, match="worker"):
        StackSpec(workers=0)
    with pytest.raises(ValueError, match="default"):
        StackSpec(partitions=(Partition("a", default=True), Partition("b", default=True)))


def test_no_partition_takes_the_host_queue_s_name() -> None:
    with pytest.raises(ValueError, match="host queue"):
        StackSpec(partitions=(Partition("host", default=True),))


def test_cluster_name_is_slurm_safe() -> None:
    assert cluster_name("intercede") == "intercede"
    assert cluster_name("intercede-tmp1a2b") == "intercede_tmp1a2b"
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", cluster_name("9lives.x"))


def test_slurmdbd_conf_carries_the_password_and_refuses_unsafe_ones() -> None:
    text = render_slurmdbd_conf(StackSpec(), "abc123")
    assert "StoragePass=abc123" in text
    assert "StorageHost=database" in text
    with pytest.raises(ValueError, match="alphanumeric"):
        render_slurmdbd_conf(StackSpec(), "a'b")


def test_cgroup_conf_follows_the_variant() -> None:
    variants = load_variants()
    assert "CgroupPlugin=autodetect" in render_cgroup_conf(StackSpec(), variants["bookworm"])
    assert "CgroupPlugin=disabled" in render_cgroup_conf(StackSpec(), variants["trixie"])


def test_variants_pin_distinct_slurm_versions() -> None:
    variants = load_variants()
    assert variants["bookworm"].slurm_version.startswith("22.05.")
    assert variants["trixie"].slurm_version.startswith("24.11.")
    for v in variants.values():
        args = v.build_args("base:tag")
        assert args == {
            "BASE_IMAGE": "base:tag",
            "SLURM_VERSION": v.slurm_version,
            "MUNGE_VERSION": v.munge_version,
        }


def test_client_toml_has_the_exact_registry_keys(tmp_path: Path) -> None:
    key, kh = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    text = render_client_toml(StackSpec(), key_path=key, known_hosts_path=kh, port=40022)
    assert text.startswith('# Generated by the interCEde harness for stack "intercede"')
    data = tomllib.loads(text)
    assert data == {
        "credentials": {"ssh_key_file": str(key)},
        "defaults": {
            "kind": "batch",
            "transport": "ssh",
            "scheduler": "slurm",
            "host": "127.0.0.1",
            "port": 40022,
            "user": "submit",
            "known_hosts": str(kh),
            "work_root": "/home/submit/intercede",
        },
        "queues": {
            "main": {"queue": "main"},
            "second": {"queue": "second"},
            "host": {"scheduler": "host", "slots": 2},
        },
    }
    assert "[queues.main]" in text
    assert isinstance(data["defaults"]["port"], int)


def test_known_hosts_line_uses_bracketed_port() -> None:
    line = known_hosts_line(40022, "ssh-ed25519 AAAAC3Nz login@intercede\n")
    assert line == "[127.0.0.1]:40022 ssh-ed25519 AAAAC3Nz\n"
    assert known_hosts_line(22, "ssh-ed25519 AAAA").startswith("127.0.0.1 ")
    with pytest.raises(ValueError, match="public key"):
        known_hosts_line(1, "garbage")


def test_image_tag_is_a_content_hash(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    v = load_variants()["bookworm"]
    first = stack_hash(v, tmp_path)
    assert stack_hash(v, tmp_path) == first
    (tmp_path / "entrypoint.sh").write_text("#!/bin/sh\n")
    assert stack_hash(v, tmp_path) != first
    assert stack_hash(load_variants()["trixie"], tmp_path) != stack_hash(v, tmp_path)
    assert image_tag(v, tmp_path).startswith("intercede-slurm:bookworm-")


def test_the_dirac_cs_reads_the_host_queue_apart_from_the_partitions(tmp_path: Path) -> None:
    from harness.dirac_cs import StackAccess

    path = tmp_path / "client.toml"
    path.write_text(
        render_client_toml(StackSpec(), key_path=tmp_path / "k", known_hosts_path=tmp_path, port=1)
    )
    access = StackAccess.from_client_config(path)
    assert access.queues == ("main", "second")
    assert access.host_queues == {"host": 2}
