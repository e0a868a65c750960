"""Bringing a stack up (new or reused), judging it ready, and taking it down.

A running stack is reused only when its labels say it is the one asked for (image, partitions,
variant); anything else is removed and created afresh. A start that fails saves every
container's log for the post-mortem and removes what it made, so the next start is clean.
"""

from __future__ import annotations

import contextlib
import time
from functools import partial
from typing import TYPE_CHECKING

from harness import engine
from harness.config import StackSpec, Variant, image_tag, load_variants
from harness.nodes import NodeAccess
from harness.provision import (
    create_containers,
    mint_secrets,
    remint_user_key,
    write_client_files,
)
from harness.readiness import (
    AccountingReady,
    ContainersUp,
    NotReady,
    Probe,
    Problem,
    SlurmNodesUsable,
    SshLogin,
    first_problem,
    wait_for,
)
from harness.stack import (
    LABEL_PARTITIONS,
    LABEL_VARIANT,
    LABEL_WORKERS,
    Stack,
    StackError,
    reuse_mismatch,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from docker.models.containers import Container

__all__ = ["LOG_TAIL", "Lifecycle"]

LOG_TAIL = 40


class Lifecycle:
    """up, down and readiness of one stack; state lives in Docker labels and the state dir."""

    def __init__(self, stack: Stack, nodes: NodeAccess, ready_timeout: float) -> None:
        self.stack = stack
        self.nodes = nodes
        self.ready_timeout = ready_timeout

    # ---------------------------------------------------------------- up

    def is_running(self) -> bool:
        """True when every node's container exists and runs (health not judged).

        No engine answering means nothing runs: callers ask this before ``up()``, which is
        what then starts an engine.
        """
        try:
            containers = self.stack.containers()
        except engine.EngineError:
            return False
        return all(
            n in containers and containers[n].status == "running" for n in self.stack.nodes
        ) and bool(containers)

    def up(self) -> bool:
        """Bring the stack up or reuse a running healthy one; True when it was reused.

        Not locked itself: concurrent callers for one name go through
        :func:`harness._lock.stack_lock`, as the CLI, ``e2e`` and the pytest fixture do.
        """
        stack = self.stack
        engine.ensure_engine()
        existing = stack.containers()
        if not existing:
            self._remove_orphans()
        if existing:
            labels = next(iter(existing.values())).labels
            variant = labels.get(LABEL_VARIANT)
            if variant and variant != stack.variant_name:
                raise StackError(
                    f"stack {stack.name} is running variant {variant}, not "
                    f"{stack.variant_name}; run `python -m harness down` first"
                )
            workers = labels.get(LABEL_WORKERS)
            if workers and int(workers) != stack.spec.workers:
                spec = stack.spec
                stack.spec = StackSpec(
                    name=spec.name,
                    variant=spec.variant,
                    workers=int(workers),
                    partitions=spec.partitions,
                    slurmd_timeout=spec.slurmd_timeout,
                )
            if self._try_reuse(existing):
                return True
            stack.log(f"stack {stack.name} exists but is not reusable; recreating it")
            self.down()
        self._create()
        return False

    def _expected_image(self) -> str:
        """The image a new stack would run: ``--image``/env, else the content-hashed tag."""
        return self.stack.image or image_tag(self._variant())

    def _running_partitions(self) -> tuple[str, ...] | None:
        """Slurm's own partition list (default first, as configured), for unlabelled stacks."""
        try:
            code, out = self.nodes.exec("controller", ["sinfo", "-h", "-o", "%P"])
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
            partitions=self.stack.queues,
            running_image=running_image,
            running_partitions=running_partitions,
        )

    def _try_reuse(self, existing: dict[str, Container]) -> bool:
        stack = self.stack
        if any(n not in existing for n in stack.nodes):
            return False
        # Before waking anything up: a stack that is not the one asked for is removed anyway.
        reason = self._mismatch(existing)
        if reason is not None:
            stack.log(f"stack {stack.name} cannot be reused: {reason}")
            return False
        for node in stack.nodes:
            c = existing[node]
            if c.status == "paused":
                c.unpause()
            elif c.status != "running":
                c.start()
        if not stack.key_path.exists():
            remint_user_key(stack, self.nodes)
        try:
            self._write_client_files()
            self.wait_ready(timeout=min(self.ready_timeout, 120.0))
        except StackError as exc:
            stack.log(f"reuse check failed: {exc}")
            return False
        stack.log(f"reusing running stack {stack.name} (ssh port {self.nodes.ssh_port})")
        return True

    def _variant(self) -> Variant:
        variants = load_variants()
        name = self.stack.variant_name
        if name not in variants:
            raise StackError(f"unknown variant {name!r}; known: {', '.join(sorted(variants))}")
        return variants[name]

    def ensure_image(self) -> str:
        stack = self.stack
        if stack.image:
            from harness.image import image_exists

            if not image_exists(stack.docker, stack.image):
                raise StackError(f"image {stack.image} is not loaded in the engine")
            return stack.image
        from harness.image import ensure_image

        stack.state_dir.mkdir(parents=True, exist_ok=True)
        log_file = stack.state_dir.parent / f"build-{stack.variant_name}.log"
        return ensure_image(stack.docker, self._variant(), stack.log, log_file)

    def _remove_orphans(self) -> None:
        """Drop networks and volumes a crashed ``_create`` left without containers.

        A second network of the same name makes Docker refuse to attach ("network is
        ambiguous") and a stale config volume would seed old secrets, so a start begins clean.
        """
        import docker.errors

        stack = self.stack
        for network in stack.docker.networks.list(filters=stack.filters()):
            stack.log(f"stack {stack.name}: removing leftover network {network.name}")
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
        for volume in stack.docker.volumes.list(filters=stack.filters()):
            stack.log(f"stack {stack.name}: removing leftover volume {volume.name}")
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)

    def _create(self) -> None:
        """Start a new stack; on any failure remove what was made so the next start is clean.

        Container logs are dumped first (the stack's logs_dir, in the report folder) for the
        post-mortem.
        """
        stack = self.stack
        t0 = time.monotonic()
        image = self.ensure_image()
        try:
            create_containers(stack, image, mint_secrets(stack, self._variant()))
            self.nodes.forget_port()
            self._write_client_files()
            self.wait_ready()
        except BaseException:
            with contextlib.suppress(Exception):
                if stack.containers():
                    stack.log(f"stack {stack.name}: start failed, logs in {self.nodes.dump_logs()}")
            with contextlib.suppress(Exception):
                self.down()
            raise
        elapsed = time.monotonic() - t0
        stack.log(f"stack {stack.name} ready in {elapsed:.1f}s (ssh port {self.nodes.ssh_port})")

    def _write_client_files(self) -> None:
        write_client_files(self.stack, self.nodes)

    # ---------------------------------------------------------------- down

    def down(self) -> None:
        """Remove every container, network and volume labelled with this stack's name."""
        import docker.errors

        stack = self.stack
        cli, filters = stack.docker, stack.filters()
        for c in cli.containers.list(all=True, filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True, v=True)
        for n in cli.networks.list(filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                n.remove()
        for v in cli.volumes.list(filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                v.remove(force=True)
        for name in ("client.toml", "id_ed25519", "id_ed25519.pub", "known_hosts", "stack.json"):
            (stack.state_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            stack.state_dir.rmdir()  # only when empty: dumped logs are kept
        self.nodes.forget_port()

    def leftovers(self) -> dict[str, list[str]]:
        """What ``down`` should have removed; empty lists mean nothing is left."""
        cli, filters = self.stack.docker, self.stack.filters()
        return {
            "containers": [str(c.name) for c in cli.containers.list(all=True, filters=filters)],
            "networks": [str(n.name) for n in cli.networks.list(filters=filters)],
            "volumes": [str(v.name) for v in cli.volumes.list(filters=filters)],
        }

    # ---------------------------------------------------------------- readiness

    def probes(self) -> list[Probe]:
        """What "ready" means for a stack, cheapest and most basic first."""
        stack, controller = self.stack, partial(self.nodes.exec, "controller")
        return [
            ContainersUp(stack.containers, stack.nodes),
            SlurmNodesUsable(controller, stack.workers),
            AccountingReady(controller, stack.cluster_name, stack.user),
            SshLogin(self.nodes.ssh, stack.user),
        ]

    def readiness_problem(self) -> Problem | None:
        """The first reason the stack is not usable yet, or None when it is."""
        return first_problem(self.probes())

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = self.ready_timeout if timeout is None else timeout
        try:
            wait_for(self.probes(), deadline)
        except NotReady as exc:
            prefix = "" if exc.timeout is None else f"not ready after {exc.timeout:.0f}s"
            raise self._failure(exc.problem, prefix) from None

    def _failure(self, problem: Problem, prefix: str = "") -> StackError:
        """A StackError naming the failed service, with that service's last log lines."""
        service, name = problem.service, self.stack.name
        tail = ""
        if service in self.stack.nodes:
            with contextlib.suppress(Exception):
                tail = self.nodes.logs(service, tail=LOG_TAIL)[service]
        head = f"stack {name}: {prefix + ': ' if prefix else ''}"
        msg = f"{head}service {service!r} failed: {problem.detail}"
        if tail:
            msg += f"\n--- last {LOG_TAIL} log lines of {service} ---\n{tail}"
        return StackError(msg, service)
