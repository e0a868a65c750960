"""A real multi-node Slurm cluster in containers, for interCEde's end-to-end tests.

Why containers and not a mock: a backend is only finished when it works against the real
daemons (IC-ADR-002). The stack is database (MariaDB), dbd (slurmdbd), controller (slurmctld),
workers (slurmd) and a login node (sshd), on one user network, with the submit user's home on a
shared volume like a site's shared filesystem. Secrets (munge key, SSH keys, DB password) are
minted per stack at ``up()``; readiness is judged from Slurm's own answers.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness import engine
from harness.config import (
    DEFAULT_PARTITIONS,
    Partition,
    StackSpec,
    Variant,
    cluster_name,
    image_tag,
    known_hosts_line,
    load_variants,
    render_cgroup_conf,
    render_client_toml,
    render_slurm_conf,
    render_slurmdbd_conf,
    report_dir,
    state_dir,
)
from harness.readiness import (
    SINFO_FORMAT,
    Problem,
    accounting_problem,
    node_problems,
    parse_sinfo,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker
    from docker.models.containers import Container

__all__ = [
    "DEFAULT_STACK",
    "LABEL_IMAGE",
    "LABEL_NODE",
    "LABEL_PARTITIONS",
    "LABEL_ROLE",
    "LABEL_STACK",
    "LABEL_VARIANT",
    "Cluster",
    "NodeStatus",
    "StackError",
    "default_stack_name",
    "reuse_mismatch",
]

LABEL_STACK = "org.intercede.stack"
LABEL_NODE = "org.intercede.node"
LABEL_ROLE = "org.intercede.role"
LABEL_VARIANT = "org.intercede.variant"
LABEL_WORKERS = "org.intercede.workers"
LABEL_IMAGE = "org.intercede.image"
LABEL_PARTITIONS = "org.intercede.partitions"
DEFAULT_STACK = "intercede"
CONFIG_MOUNT = "/etc/intercede"
LOG_TAIL = 40


def default_stack_name() -> str:
    return os.environ.get("INTERCEDE_STACK", DEFAULT_STACK)


def _stderr(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


class StackError(RuntimeError):
    """The stack could not be brought up or used; the message names the failing service."""

    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


@dataclass(frozen=True)
class NodeStatus:
    """One container's state as Docker sees it, for ``status`` and for diagnostics."""

    node: str
    container: str
    state: str
    health: str


def reuse_mismatch(
    labels: Mapping[str, str],
    *,
    image: str,
    partitions: Sequence[str],
    running_image: str | None = None,
    running_partitions: Sequence[str] | None = None,
) -> str | None:
    """Why a running stack is not the one asked for, or None when it may be reused.

    Labels written at creation are the record. Stacks from before those labels fall back to
    what Docker and Slurm report (the container's image reference, ``sinfo``'s partitions);
    when neither source knows, the stack is not trusted: recreating costs seconds, a
    ``client.toml`` naming partitions that do not exist costs an afternoon.
    """
    have_image = labels.get(LABEL_IMAGE) or running_image
    if have_image != image:
        return f"it runs image {have_image or '(unknown)'}, not {image}"
    label = labels.get(LABEL_PARTITIONS)
    have = tuple(label.split(",")) if label else running_partitions
    if have is None or tuple(have) != tuple(partitions):
        shown = ",".join(have) if have is not None else "(unknown)"
        return f"it has partitions {shown}, not {','.join(partitions)}"
    return None


def _role(node: str) -> str:
    return "worker" if node.startswith("worker") else node


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ssh_keygen(path: Path, comment: str) -> None:
    if shutil.which("ssh-keygen") is None:
        raise StackError("ssh-keygen not found: install openssh-client on this machine")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


class Cluster:
    """Lifecycle and access to one named stack; usable as a context manager.

    Construction does no I/O. Several processes may hold a ``Cluster`` for the same name: all
    state lives in Docker (labels) and in the stack's state directory.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        variant: str | None = None,
        workers: int = 2,
        partitions: Sequence[str] = DEFAULT_PARTITIONS,
        image: str | None = None,
        slurmd_timeout: int = 30,
        ready_timeout: float = 300.0,
        state_root: Path | None = None,
        keep_on_exit: bool = False,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self.name = name or default_stack_name()
        self.variant_name = variant or os.environ.get("SLURM_VARIANT", "bookworm")
        self.spec = StackSpec(
            name=self.name,
            variant=self.variant_name,
            workers=workers,
            partitions=tuple(Partition(p, default=(i == 0)) for i, p in enumerate(partitions)),
            slurmd_timeout=slurmd_timeout,
        )
        self.image = image or os.environ.get("INTERCEDE_STACK_IMAGE") or None
        self.ready_timeout = ready_timeout
        self.keep_on_exit = keep_on_exit
        self.state_dir = state_dir(self.name, state_root)
        self._log = log
        self._cli: docker.DockerClient | None = None
        self._port: int | None = None

    # ---------------------------------------------------------------- public attributes

    @property
    def client_config_path(self) -> Path:
        return self.state_dir / "client.toml"

    @property
    def key_path(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def logs_dir(self) -> Path:
        """Where a failed run saves every container's log: ``<report folder>/logs/<stack>/``."""
        return report_dir() / "logs" / self.name

    @property
    def queues(self) -> tuple[str, ...]:
        return self.spec.queues

    @property
    def user(self) -> str:
        return self.spec.submit_user

    @property
    def home(self) -> str:
        return self.spec.home

    @property
    def work_root(self) -> str:
        return self.spec.work_root

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.spec.nodes

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(n for n in self.nodes if n.startswith("worker"))

    @property
    def cluster_name(self) -> str:
        return cluster_name(self.name)

    @property
    def ssh_port(self) -> int:
        if self._port is None:
            self._port = self._read_port()
        return self._port

    @property
    def network_name(self) -> str:
        return f"{self.name}-net"

    def container_name(self, node: str) -> str:
        return f"{self.name}-{node}"

    # ---------------------------------------------------------------- docker plumbing

    @property
    def docker(self) -> docker.DockerClient:
        """A client for the engine that answers; never installs or starts one.

        Read-only commands (status, logs, down, ssh) must not turn a machine without Docker
        into one with a daemon running: only :meth:`up` calls :func:`engine.ensure_engine`.
        """
        if self._cli is None:
            self._cli = engine.client()
        return self._cli

    def _labels(self, **extra: str) -> dict[str, str]:
        return {LABEL_STACK: self.name, **extra}

    def _filters(self) -> dict[str, Any]:
        return {"label": f"{LABEL_STACK}={self.name}"}

    def _containers(self) -> dict[str, Container]:
        found = self.docker.containers.list(all=True, filters=self._filters())
        return {str(c.labels.get(LABEL_NODE, c.name)): c for c in found}

    def container(self, node: str) -> Container:
        import docker.errors

        try:
            return self.docker.containers.get(self.container_name(node))
        except docker.errors.NotFound as exc:
            raise StackError(f"stack {self.name}: no container for {node}", node) from exc

    def _read_port(self) -> int:
        login = self.container("login")
        login.reload()
        bindings = (login.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("22/tcp")
        if not bindings:
            raise StackError(f"stack {self.name}: login has no published SSH port", "login")
        return int(bindings[0]["HostPort"])

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.keep_on_exit:
            self.down()

    def is_running(self) -> bool:
        """True when every node's container exists and runs (health not judged).

        No engine answering means nothing runs: callers ask this before ``up()``, which is
        what then starts an engine.
        """
        try:
            containers = self._containers()
        except engine.EngineError:
            return False
        return all(
            n in containers and containers[n].status == "running" for n in self.nodes
        ) and bool(containers)

    def up(self) -> bool:
        """Bring the stack up or reuse a running healthy one; True when it was reused.

        Not locked itself: concurrent callers for one name go through
        :func:`harness._lock.stack_lock`, as the CLI, ``e2e`` and the pytest fixture do.
        """
        engine.ensure_engine()
        existing = self._containers()
        if not existing:
            self._remove_orphans()
        if existing:
            variant = next(iter(existing.values())).labels.get(LABEL_VARIANT)
            if variant and variant != self.variant_name:
                raise StackError(
                    f"stack {self.name} is running variant {variant}, not "
                    f"{self.variant_name}; run `python -m harness down` first"
                )
            workers = next(iter(existing.values())).labels.get(LABEL_WORKERS)
            if workers and int(workers) != self.spec.workers:
                self.spec = StackSpec(
                    name=self.spec.name,
                    variant=self.spec.variant,
                    workers=int(workers),
                    partitions=self.spec.partitions,
                    slurmd_timeout=self.spec.slurmd_timeout,
                )
            if self._try_reuse(existing):
                return True
            self._log(f"stack {self.name} exists but is not reusable; recreating it")
            self.down()
        self._create()
        return False

    def _expected_image(self) -> str:
        """The image a new stack would run: ``--image``/env, else the content-hashed tag."""
        return self.image or image_tag(self._variant())

    def _running_partitions(self) -> tuple[str, ...] | None:
        """Slurm's own partition list (default first, as configured), for unlabelled stacks."""
        try:
            code, out = self.exec("controller", ["sinfo", "-h", "-o", "%P"])
        except StackError:
            return None
        if code != 0:
            return None
        return tuple(line.strip().rstrip("*") for line in out.splitlines() if line.strip())

    def _mismatch(self, existing: dict[str, Container]) -> str | None:
        some = existing.get("controller") or next(iter(existing.values()))
        labels = {str(k): str(v) for k, v in (some.labels or {}).items()}
        running_image = str((some.attrs.get("Config") or {}).get("Image") or "") or None
        running_partitions = None if LABEL_PARTITIONS in labels else self._running_partitions()
        return reuse_mismatch(
            labels,
            image=self._expected_image(),
            partitions=self.queues,
            running_image=running_image,
            running_partitions=running_partitions,
        )

    def _try_reuse(self, existing: dict[str, Container]) -> bool:
        missing = [n for n in self.nodes if n not in existing]
        if missing:
            return False
        # Before waking anything up: a stack that is not the one asked for is removed anyway.
        reason = self._mismatch(existing)
        if reason is not None:
            self._log(f"stack {self.name} cannot be reused: {reason}")
            return False
        for node in self.nodes:
            c = existing[node]
            if c.status == "paused":
                c.unpause()
            elif c.status != "running":
                c.start()
        if not self.key_path.exists():
            self._remint_user_key()
        try:
            self._write_client_files()
            self.wait_ready(timeout=min(self.ready_timeout, 120.0))
        except StackError as exc:
            self._log(f"reuse check failed: {exc}")
            return False
        self._log(f"reusing running stack {self.name} (ssh port {self.ssh_port})")
        return True

    def _variant(self) -> Variant:
        variants = load_variants()
        if self.variant_name not in variants:
            raise StackError(
                f"unknown variant {self.variant_name!r}; known: {', '.join(sorted(variants))}"
            )
        return variants[self.variant_name]

    def ensure_image(self) -> str:
        if self.image:
            from harness.image import image_exists

            if not image_exists(self.docker, self.image):
                raise StackError(f"image {self.image} is not loaded in the engine")
            return self.image
        from harness.image import ensure_image

        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.state_dir.parent / f"build-{self.variant_name}.log"
        return ensure_image(self.docker, self._variant(), self._log, log_file)

    def _mint(self) -> dict[str, tuple[bytes, int]]:
        """Fresh per-stack secrets; the user key stays on the host, the rest go to a volume."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.key_path, self.key_path.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        _ssh_keygen(self.key_path, f"{self.user}@{self.name}")
        self.key_path.chmod(0o600)
        with tempfile.TemporaryDirectory() as tmp:
            host_key = Path(tmp) / "ssh_host_ed25519_key"
            _ssh_keygen(host_key, f"login@{self.name}")
            host_priv = host_key.read_bytes()
            host_pub = host_key.with_suffix(".pub").read_bytes()
        password = secrets.token_hex(16)
        variant = self._variant()
        return {
            "slurm.conf": (render_slurm_conf(self.spec).encode(), 0o644),
            "cgroup.conf": (render_cgroup_conf(self.spec, variant).encode(), 0o644),
            "slurmdbd.conf": (render_slurmdbd_conf(self.spec, password).encode(), 0o600),
            "db_password": (password.encode(), 0o600),
            "munge.key": (secrets.token_bytes(1024), 0o600),
            "ssh_host_ed25519_key": (host_priv, 0o600),
            "ssh_host_ed25519_key.pub": (host_pub, 0o644),
            "authorized_keys": (self.key_path.with_suffix(".pub").read_bytes(), 0o644),
        }

    def _remint_user_key(self) -> None:
        """The host-side key was lost while the stack ran: authorise a new one."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _ssh_keygen(self.key_path, f"{self.user}@{self.name}")
        self.key_path.chmod(0o600)
        pub = self.key_path.with_suffix(".pub").read_text().strip()
        path = f"{self.home}/.ssh/authorized_keys"
        code, out = self.exec("login", ["sh", "-c", f"echo '{pub}' >> {path}"], user=self.user)
        if code != 0:
            raise StackError(f"cannot authorise a new key on login: {out}", "login")

    def _remove_orphans(self) -> None:
        """Drop networks and volumes a crashed ``_create`` left without containers.

        A second network of the same name makes Docker refuse to attach ("network is
        ambiguous") and a stale config volume would seed old secrets, so a start begins clean.
        """
        import docker.errors

        cli = self.docker
        for network in cli.networks.list(filters=self._filters()):
            self._log(f"stack {self.name}: removing leftover network {network.name}")
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
        for volume in cli.volumes.list(filters=self._filters()):
            self._log(f"stack {self.name}: removing leftover volume {volume.name}")
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)

    def _create(self) -> None:
        """Start a new stack; on any failure remove what was made so the next start is clean.

        Container logs are dumped first (:attr:`logs_dir`, in the report folder) for the
        post-mortem.
        """
        t0 = time.monotonic()
        image = self.ensure_image()
        try:
            self._start(image)
        except BaseException:
            with contextlib.suppress(Exception):
                if self._containers():
                    self._log(f"stack {self.name}: start failed, logs in {self.dump_logs()}")
            with contextlib.suppress(Exception):
                self.down()
            raise
        self._log(
            f"stack {self.name} ready in {time.monotonic() - t0:.1f}s (ssh port {self.ssh_port})"
        )

    def _start(self, image: str) -> None:
        files = self._mint()
        cli = self.docker
        self._log(f"starting stack {self.name} ({self.variant_name}, image {image})")
        cli.networks.create(self.network_name, driver="bridge", labels=self._labels())
        config_vol = cli.volumes.create(f"{self.name}-config", labels=self._labels())
        home_vol = cli.volumes.create(f"{self.name}-home", labels=self._labels())
        # Fill the config volume through a never-started helper: no secret touches the image.
        helper = cli.containers.create(
            image,
            entrypoint=["/bin/true"],
            name=f"{self.name}-seed",
            labels=self._labels(**{LABEL_NODE: "seed"}),
            volumes={config_vol.name: {"bind": CONFIG_MOUNT, "mode": "rw"}},
            network_disabled=True,
        )
        try:
            helper.put_archive(CONFIG_MOUNT, _tar(files))
        finally:
            helper.remove(force=True)
        from docker.types import EndpointConfig

        # Port None: the engine picks a free one, so parallel stacks never collide.
        ports: dict[str, Any] = {"22/tcp": ("127.0.0.1", None)}

        for node in self.nodes:
            role = _role(node)
            volumes: dict[str, dict[str, str]] = {
                config_vol.name: {"bind": CONFIG_MOUNT, "mode": "ro"}
            }
            if role in ("worker", "login"):
                volumes[home_vol.name] = {"bind": self.home, "mode": "rw"}
            container = cli.containers.create(
                image,
                name=self.container_name(node),
                hostname=node,
                labels=self._labels(
                    **{
                        LABEL_NODE: node,
                        LABEL_ROLE: role,
                        LABEL_VARIANT: self.variant_name,
                        LABEL_WORKERS: str(self.spec.workers),
                        LABEL_IMAGE: image,
                        LABEL_PARTITIONS: ",".join(self.queues),
                    }
                ),
                environment={
                    "INTERCEDE_ROLE": role,
                    "INTERCEDE_SUBMIT_USER": self.user,
                },
                volumes=volumes,
                network=self.network_name,
                networking_config={
                    self.network_name: EndpointConfig(version=cli.api.api_version, aliases=[node])
                },
                ports=ports if role == "login" else None,
                detach=True,
            )
            container.start()
        self._port = None
        self._write_client_files()
        self.wait_ready()

    def _write_client_files(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        code, pub = self.exec("login", ["cat", "/etc/intercede/ssh_host_ed25519_key.pub"])
        if code != 0:
            raise StackError(f"cannot read the login host key: {pub}", "login")
        port = self.ssh_port
        self.known_hosts_path.write_text(known_hosts_line(port, pub.strip()))
        self.client_config_path.write_text(
            render_client_toml(
                self.spec,
                key_path=self.key_path.resolve(),
                known_hosts_path=self.known_hosts_path.resolve(),
                port=port,
            )
        )
        (self.state_dir / "stack.json").write_text(
            json.dumps(
                {
                    "name": self.name,
                    "variant": self.variant_name,
                    "workers": self.spec.workers,
                    "queues": list(self.queues),
                    "ssh_port": port,
                    "cluster": self.cluster_name,
                },
                indent=2,
            )
            + "\n"
        )

    def down(self) -> None:
        """Remove every container, network and volume labelled with this stack's name."""
        import docker.errors

        cli = self.docker
        for c in cli.containers.list(all=True, filters=self._filters()):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True, v=True)
        for n in cli.networks.list(filters=self._filters()):
            with contextlib.suppress(docker.errors.NotFound):
                n.remove()
        for v in cli.volumes.list(filters=self._filters()):
            with contextlib.suppress(docker.errors.NotFound):
                v.remove(force=True)
        for name in ("client.toml", "id_ed25519", "id_ed25519.pub", "known_hosts", "stack.json"):
            (self.state_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()  # only when empty: dumped logs are kept
        self._port = None

    def leftovers(self) -> dict[str, list[str]]:
        """What ``down`` should have removed; empty lists mean nothing is left."""
        cli = self.docker
        return {
            "containers": [
                str(c.name) for c in cli.containers.list(all=True, filters=self._filters())
            ],
            "networks": [str(n.name) for n in cli.networks.list(filters=self._filters())],
            "volumes": [str(v.name) for v in cli.volumes.list(filters=self._filters())],
        }

    # ---------------------------------------------------------------- readiness

    def _health_problem(self) -> Problem | None:
        containers = self._containers()
        for node in self.nodes:
            c = containers.get(node)
            if c is None:
                return Problem(node, "container missing")
            if c.status != "running":
                return Problem(node, f"container {c.status}")
            health = (c.attrs.get("State", {}).get("Health") or {}).get("Status", "none")
            if health not in ("healthy", "none"):
                return Problem(node, f"health {health}")
        return None

    def _slurm_problem(self) -> Problem | None:
        code, out = self.exec("controller", ["sinfo", "-h", "-N", "-o", SINFO_FORMAT])
        if code != 0:
            return Problem("controller", f"sinfo failed: {out.strip()}")
        problems = node_problems(parse_sinfo(out), self.workers)
        if problems:
            return problems[0]
        code, clusters = self.exec("controller", ["sacctmgr", "-n", "-P", "list", "cluster"])
        if code != 0:
            return Problem("dbd", f"sacctmgr failed: {clusters.strip()}")
        code, assoc = self.exec(
            "controller",
            [
                "sacctmgr",
                "-n",
                "-P",
                "list",
                "assoc",
                f"cluster={self.cluster_name}",
                f"user={self.user}",
                "format=User",
            ],
        )
        return accounting_problem(clusters, assoc, self.cluster_name, self.user)

    def ssh_argv(self, *remote: str, batch: bool = True) -> list[str]:
        """System ssh with host-key verification on and only our key and known_hosts."""
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.ssh_port),
        ]
        if batch:
            argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        return [*argv, f"{self.user}@127.0.0.1", *remote]

    def ssh(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        proc = subprocess.run(
            self.ssh_argv(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr

    def _ssh_problem(self) -> Problem | None:
        try:
            code, out = self.ssh("sinfo -h -o %P", timeout=20)
        except subprocess.TimeoutExpired:
            return Problem("login", "ssh timed out")
        if code != 0:
            return Problem("login", f"ssh as {self.user} failed ({code}): {out.strip()}")
        return None

    def readiness_problem(self) -> Problem | None:
        """The first reason the stack is not usable yet, or None when it is."""
        return self._health_problem() or self._slurm_problem() or self._ssh_problem()

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = self.ready_timeout if timeout is None else timeout
        last: list[Problem | None] = [None]

        def check() -> Problem | None:
            problem = self._health_problem()
            if problem and problem.detail.startswith("container "):
                # A dead container will not come back by itself: fail now, not at the deadline.
                raise self._failure(problem)
            problem = problem or self._slurm_problem() or self._ssh_problem()
            last[0] = problem
            return problem

        retrying = Retrying(
            stop=stop_after_delay(deadline),
            wait=wait_fixed(0.5),
            retry=retry_if_result(lambda p: p is not None),
        )
        try:
            retrying(check)
        except RetryError:
            problem = last[0] or Problem("stack", "unknown")
            raise self._failure(problem, f"not ready after {deadline:.0f}s") from None

    def _failure(self, problem: Problem, prefix: str = "") -> StackError:
        service = problem.service
        tail = ""
        if service in self.nodes:
            with contextlib.suppress(Exception):
                tail = self.logs(service, tail=LOG_TAIL)[service]
        head = f"stack {self.name}: {prefix + ': ' if prefix else ''}"
        msg = f"{head}service {service!r} failed: {problem.detail}"
        if tail:
            msg += f"\n--- last {LOG_TAIL} log lines of {service} ---\n{tail}"
        return StackError(msg, service)

    # ---------------------------------------------------------------- use

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        user: str | None = None,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run a command inside a node's container; returns (exit code, stdout+stderr)."""
        result = self.container(node).exec_run(
            list(argv),
            user=user or "",
            workdir=workdir,
            environment=environment,
            demux=False,
        )
        output = result.output if isinstance(result.output, bytes) else b""
        return int(result.exit_code or 0), output.decode(errors="replace")

    def status(self) -> list[NodeStatus]:
        containers = self._containers()
        rows = []
        for node in self.nodes:
            c = containers.get(node)
            if c is None:
                rows.append(NodeStatus(node, self.container_name(node), "missing", "-"))
                continue
            health = (c.attrs.get("State", {}).get("Health") or {}).get("Status", "-")
            rows.append(NodeStatus(node, str(c.name), str(c.status), str(health)))
        return rows

    def logs(self, node: str | None = None, tail: int | None = None) -> dict[str, str]:
        """Container logs (stdout+stderr) per node; missing nodes are reported, not raised."""
        containers = self._containers()
        out: dict[str, str] = {}
        for name in [node] if node else list(self.nodes):
            c = containers.get(name)
            if c is None:
                out[name] = "(no container)"
                continue
            data = c.logs(stdout=True, stderr=True, tail=tail if tail is not None else "all")
            out[name] = data.decode(errors="replace") if isinstance(data, bytes) else ""
        return out

    def dump_logs(self, directory: Path | None = None) -> Path:
        """Every node's full container log as ``<node>.log`` (default :attr:`logs_dir`)."""
        target = directory or self.logs_dir
        target.mkdir(parents=True, exist_ok=True)
        for node, text in self.logs().items():
            (target / f"{node}.log").write_text(text)
        return target
