"""Cluster lifecycle decisions, against an in-memory Docker stand-in (no engine needed).

What is checked here is the harness's own logic: which commands may start an engine, what a
failed start leaves behind, and when a running stack may be reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from harness import engine
from harness.__main__ import main
from harness._lock import stack_lock
from harness.cluster import Cluster
from harness.config import image_tag, load_variants
from harness.lifecycle import Lifecycle
from harness.nodes import NodeAccess
from harness.stack import (
    LABEL_IMAGE,
    LABEL_NODE,
    LABEL_PARTITIONS,
    LABEL_STACK,
    LABEL_VARIANT,
    LABEL_WORKERS,
    reuse_mismatch,
)


class Thing:
    """A network, volume or container: a name, labels, and whether it was removed."""

    def __init__(self, store: list[Thing], name: str, labels: Mapping[str, str], **attrs: Any):
        self.store, self.name, self.labels = store, name, dict(labels)
        self.status = attrs.pop("status", "running")
        self.attrs: dict[str, Any] = attrs

    def remove(self, **kwargs: Any) -> None:
        self.store.remove(self)


class Collection:
    def __init__(self, fail_create: bool = False) -> None:
        self.items: list[Thing] = []
        self.fail_create = fail_create

    def list(self, all: bool = False, filters: Mapping[str, str] | None = None) -> list[Thing]:
        key, _, value = (filters or {}).get("label", "").partition("=")
        return [t for t in self.items if not key or t.labels.get(key) == value]

    def create(self, *args: str, **kwargs: Any) -> Thing:
        """``networks.create(name, ...)``, ``volumes.create(name, ...)``, ``containers.create(
        image, name=...)``: the name is the keyword when given, else the first argument."""
        if self.fail_create:
            raise docker.errors.APIError("no space left on device")
        thing = Thing(self.items, kwargs.get("name") or args[0], kwargs.get("labels", {}))
        self.items.append(thing)
        return thing


class FakeAPI:
    api_version = "1.41"


class FakeDocker:
    def __init__(self) -> None:
        self.api = FakeAPI()
        self.networks = Collection()
        self.volumes = Collection()
        self.containers = Collection()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    fake = FakeDocker()
    monkeypatch.setattr(engine, "ensure_engine", lambda *a, **k: None)
    monkeypatch.setattr(engine, "client", lambda *a, **k: fake)
    return fake


def _cluster(tmp_path: Path, log: list[str], **kwargs: Any) -> Cluster:
    return Cluster("unit", state_root=tmp_path, log=log.append, **kwargs)


def _labels(cluster: Cluster, **extra: str) -> dict[str, str]:
    return {
        LABEL_STACK: cluster.name,
        LABEL_VARIANT: cluster.variant_name,
        LABEL_WORKERS: str(cluster.spec.workers),
        **extra,
    }


def _running_stack(cli: FakeDocker, cluster: Cluster, **labels: str) -> None:
    for node in cluster.nodes:
        cli.containers.items.append(
            Thing(
                cli.containers.items,
                cluster.container_name(node),
                {**_labels(cluster, **labels), LABEL_NODE: node},
                Config={"Image": labels.get(LABEL_IMAGE, "")},
            )
        )


# ------------------------------------------------------------------ finding: who starts engines


def test_the_docker_client_never_starts_an_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a read-only path started an engine")

    sentinel = FakeDocker()
    monkeypatch.setattr(engine, "ensure_engine", forbidden)
    monkeypatch.setattr(engine, "client", lambda *a, **k: sentinel)
    assert Cluster("unit", state_root=tmp_path).docker is sentinel  # type: ignore[comparison-overlap]


@pytest.fixture
def no_engine_but_could_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Root on Debian with nothing answering: the situation where the old code installed."""
    attempts: list[str] = []
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "candidate_hosts", lambda: [f"unix://{tmp_path}/none.sock"])
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(engine, "_is_debian", lambda: True)
    monkeypatch.setattr(engine, "ENGINE_LOCK", tmp_path / "engine.lock")
    monkeypatch.setattr(
        "harness._stack_cli.stack_lock", lambda name: stack_lock(name, root=tmp_path)
    )

    def install() -> None:
        attempts.append("install")

    def start(deadline_s: float) -> None:
        attempts.append("start")

    monkeypatch.setattr(engine, "_install_docker", install)
    monkeypatch.setattr(engine, "_start_private", start)
    return attempts


@pytest.mark.parametrize(
    "argv",
    [["status"], ["down"], ["logs"], ["logs", "worker1"], ["ssh", "true"]],
    ids=lambda a: " ".join(a),
)
def test_read_only_commands_say_no_engine_and_install_nothing(
    argv: list[str],
    no_engine_but_could_install: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*argv, "--name", "unit-no-engine"] if argv[0] != "ssh" else argv) == 1
    assert "no container engine answers" in capsys.readouterr().err
    assert no_engine_but_could_install == []


def test_is_running_is_false_without_an_engine(
    no_engine_but_could_install: list[str], tmp_path: Path
) -> None:
    assert Cluster("unit", state_root=tmp_path).is_running() is False
    assert no_engine_but_could_install == []


def test_up_is_what_ensures_an_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise engine.EngineError("ensure_engine was asked")

    monkeypatch.setattr(engine, "ensure_engine", refuse)
    with pytest.raises(engine.EngineError, match="ensure_engine was asked"):
        Cluster("unit", state_root=tmp_path).up()


# ------------------------------------------------------------------ finding: leftovers


def test_up_removes_orphan_networks_and_volumes_before_creating(
    cli: FakeDocker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log: list[str] = []
    cluster = _cluster(tmp_path, log)
    stack = {LABEL_STACK: "unit"}
    for _ in range(2):  # Docker allows two networks of one name: "network is ambiguous"
        cli.networks.items.append(Thing(cli.networks.items, "unit-net", stack))
    cli.volumes.items.append(Thing(cli.volumes.items, "unit-config", stack))
    cli.volumes.items.append(Thing(cli.volumes.items, "other-home", {LABEL_STACK: "other"}))
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(
        Lifecycle,
        "_create",
        lambda self: seen.append((len(cli.networks.items), len(cli.volumes.items))),
    )
    assert cluster.up() is False
    assert seen == [(0, 1)], "orphans must be gone before _create, other stacks untouched"
    assert [v.name for v in cli.volumes.items] == ["other-home"]
    assert "stack unit: removing leftover network unit-net" in log
    assert "stack unit: removing leftover volume unit-config" in log


def test_a_start_that_fails_halfway_leaves_nothing(
    cli: FakeDocker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path, [])
    monkeypatch.setattr(Lifecycle, "ensure_image", lambda self: "img:1")
    cli.containers.fail_create = True  # after the network and both volumes exist
    with pytest.raises(docker.errors.APIError, match="no space left"):
        cluster.up()
    assert cluster.leftovers() == {"containers": [], "networks": [], "volumes": []}
    assert not cluster.client_config_path.exists()
    assert not cluster.key_path.exists()


# ------------------------------------------------------------------ finding: reuse


def test_reuse_mismatch_reasons() -> None:
    ok = {LABEL_IMAGE: "img:1", LABEL_PARTITIONS: "main,second"}
    assert reuse_mismatch(ok, image="img:1", partitions=("main", "second")) is None
    assert reuse_mismatch(ok, image="img:2", partitions=("main", "second")) == (
        "it runs image img:1, not img:2"
    )
    assert reuse_mismatch(ok, image="img:1", partitions=("second", "main")) == (
        "it has partitions main,second, not second,main"
    )
    # A stack from before the labels: Docker's image reference and sinfo's partitions decide.
    assert (
        reuse_mismatch(
            {},
            image="img:1",
            partitions=("main",),
            running_image="img:1",
            running_partitions=("main",),
        )
        is None
    )
    assert reuse_mismatch({}, image="img:1", partitions=("main",), running_image="img:1") == (
        "it has partitions (unknown), not main"
    )
    assert reuse_mismatch({}, image="img:1", partitions=("main",)) == (
        "it runs image (unknown), not img:1"
    )


def _reuse_ready(monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> list[str]:
    calls: list[str] = []
    cluster.state_dir.mkdir(parents=True)
    cluster.key_path.write_text("key")
    monkeypatch.setattr(Lifecycle, "_write_client_files", lambda self: calls.append("files"))
    monkeypatch.setattr(Lifecycle, "wait_ready", lambda self, timeout=None: calls.append("ready"))
    monkeypatch.setattr(NodeAccess, "_read_port", lambda self: 2222)
    monkeypatch.setattr(Lifecycle, "down", lambda self: calls.append("down"))
    monkeypatch.setattr(Lifecycle, "_create", lambda self: calls.append("create"))
    return calls


def test_a_matching_stack_is_reused(
    cli: FakeDocker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log: list[str] = []
    cluster = _cluster(tmp_path, log)
    tag = image_tag(load_variants()["bookworm"])
    _running_stack(cli, cluster, **{LABEL_IMAGE: tag, LABEL_PARTITIONS: "main,second"})
    calls = _reuse_ready(monkeypatch, cluster)
    assert cluster.up() is True
    assert calls == ["files", "ready"]


@pytest.mark.parametrize(
    ("kwargs", "labels", "reason"),
    [
        (
            {"partitions": ["main", "gpu"]},
            {LABEL_PARTITIONS: "main,second"},
            "it has partitions main,second, not main,gpu",
        ),
        (
            {},
            {LABEL_IMAGE: "intercede-slurm:bookworm-000000000000"},
            "it runs image intercede-slurm:bookworm-000000000000, not intercede-slurm:bookworm-",
        ),
        (
            {"image": "intercede-slurm-stack:nix"},
            {LABEL_PARTITIONS: "main,second"},
            "not intercede-slurm-stack:nix",
        ),
    ],
    ids=["partitions", "outdated-slurm-stack", "explicit-image"],
)
def test_a_different_stack_is_recreated_and_says_why(
    cli: FakeDocker,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kwargs: dict[str, Any],
    labels: dict[str, str],
    reason: str,
) -> None:
    log: list[str] = []
    cluster = _cluster(tmp_path, log, **kwargs)
    defaults = {
        LABEL_IMAGE: image_tag(load_variants()["bookworm"]),
        LABEL_PARTITIONS: "main,second",
    }
    _running_stack(cli, cluster, **{**defaults, **labels})
    calls = _reuse_ready(monkeypatch, cluster)
    assert cluster.up() is False
    assert calls == ["down", "create"]
    assert any(line.startswith("stack unit cannot be reused: ") and reason in line for line in log)


def test_new_containers_carry_image_and_partition_labels(
    cli: FakeDocker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = _cluster(tmp_path, [], partitions=["a", "b", "c"])
    created: list[dict[str, str]] = []

    class Stop(Exception):
        pass

    def create(image: str, **kwargs: Any) -> Thing:
        labels = kwargs.get("labels", {})
        if labels.get(LABEL_NODE) != "seed":
            created.append(labels)
            raise Stop
        thing = Thing(cli.containers.items, kwargs["name"], labels)
        cli.containers.items.append(thing)
        thing.put_archive = lambda *a: True  # type: ignore[attr-defined]
        return thing

    monkeypatch.setattr(cli.containers, "create", create)
    monkeypatch.setattr(Lifecycle, "ensure_image", lambda self: "img:7")
    with pytest.raises(Stop):
        cluster.up()
    assert created[0][LABEL_IMAGE] == "img:7"
    assert created[0][LABEL_PARTITIONS] == "a,b,c"
