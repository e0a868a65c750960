"""What a new stack is made of: per-stack secrets, its containers, and the client files.

Secrets (munge key, SSH keys, DB password) are minted per stack and reach the containers through
a config volume filled by a never-started helper, so no secret touches the image. The client
files (``client.toml``, ``known_hosts``, ``stack.json``) are what tests and the CLI read.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.config import (
    Variant,
    known_hosts_line,
    render_cgroup_conf,
    render_client_toml,
    render_slurm_conf,
    render_slurmdbd_conf,
)
from harness.nodes import NodeAccess
from harness.stack import (
    CONFIG_MOUNT,
    LABEL_IMAGE,
    LABEL_NODE,
    LABEL_PARTITIONS,
    LABEL_ROLE,
    LABEL_VARIANT,
    LABEL_WORKERS,
    Stack,
    StackError,
    role,
)

__all__ = [
    "create_containers",
    "mint_secrets",
    "remint_user_key",
    "write_client_files",
]

Files = dict[str, tuple[bytes, int]]


def _tar(files: Files) -> bytes:
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


def mint_secrets(stack: Stack, variant: Variant) -> Files:
    """Fresh per-stack secrets; the user key stays on the host, the rest go to a volume."""
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    key = stack.key_path
    for stale in (key, key.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    _ssh_keygen(key, f"{stack.user}@{stack.name}")
    key.chmod(0o600)
    with tempfile.TemporaryDirectory() as tmp:
        host_key = Path(tmp) / "ssh_host_ed25519_key"
        _ssh_keygen(host_key, f"login@{stack.name}")
        host_priv = host_key.read_bytes()
        host_pub = host_key.with_suffix(".pub").read_bytes()
    password = secrets.token_hex(16)
    spec = stack.spec
    return {
        "slurm.conf": (render_slurm_conf(spec).encode(), 0o644),
        "cgroup.conf": (render_cgroup_conf(spec, variant).encode(), 0o644),
        "slurmdbd.conf": (render_slurmdbd_conf(spec, password).encode(), 0o600),
        "db_password": (password.encode(), 0o600),
        "munge.key": (secrets.token_bytes(1024), 0o600),
        "ssh_host_ed25519_key": (host_priv, 0o600),
        "ssh_host_ed25519_key.pub": (host_pub, 0o644),
        "authorized_keys": (key.with_suffix(".pub").read_bytes(), 0o644),
    }


def remint_user_key(stack: Stack, nodes: NodeAccess) -> None:
    """The host-side key was lost while the stack ran: authorise a new one."""
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    _ssh_keygen(stack.key_path, f"{stack.user}@{stack.name}")
    stack.key_path.chmod(0o600)
    pub = stack.key_path.with_suffix(".pub").read_text().strip()
    path = f"{stack.home}/.ssh/authorized_keys"
    code, out = nodes.exec("login", ["sh", "-c", f"echo '{pub}' >> {path}"], user=stack.user)
    if code != 0:
        raise StackError(f"cannot authorise a new key on login: {out}", "login")


def create_containers(stack: Stack, image: str, files: Files) -> None:
    """Network, volumes (config seeded with ``files``, shared home) and one container a node."""
    cli = stack.docker
    stack.log(f"starting stack {stack.name} ({stack.variant_name}, image {image})")
    cli.networks.create(stack.network_name, driver="bridge", labels=stack.labels())
    config_vol = cli.volumes.create(f"{stack.name}-config", labels=stack.labels())
    home_vol = cli.volumes.create(f"{stack.name}-home", labels=stack.labels())
    # Fill the config volume through a never-started helper: no secret touches the image.
    helper = cli.containers.create(
        image,
        entrypoint=["/bin/true"],
        name=f"{stack.name}-seed",
        labels=stack.labels(**{LABEL_NODE: "seed"}),
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

    for node in stack.nodes:
        node_role = role(node)
        volumes: dict[str, dict[str, str]] = {config_vol.name: {"bind": CONFIG_MOUNT, "mode": "ro"}}
        if node_role in ("worker", "login"):
            volumes[home_vol.name] = {"bind": stack.home, "mode": "rw"}
        container = cli.containers.create(
            image,
            name=stack.container_name(node),
            hostname=node,
            labels=stack.labels(
                **{
                    LABEL_NODE: node,
                    LABEL_ROLE: node_role,
                    LABEL_VARIANT: stack.variant_name,
                    LABEL_WORKERS: str(stack.spec.workers),
                    LABEL_IMAGE: image,
                    LABEL_PARTITIONS: ",".join(stack.queues),
                }
            ),
            environment={"INTERCEDE_ROLE": node_role, "INTERCEDE_SUBMIT_USER": stack.user},
            volumes=volumes,
            network=stack.network_name,
            networking_config={
                stack.network_name: EndpointConfig(version=cli.api.api_version, aliases=[node])
            },
            ports=ports if node_role == "login" else None,
            detach=True,
        )
        container.start()


def write_client_files(stack: Stack, nodes: NodeAccess) -> None:
    """``known_hosts`` from the login node's host key, ``client.toml`` and ``stack.json``."""
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    code, pub = nodes.exec("login", ["cat", f"{CONFIG_MOUNT}/ssh_host_ed25519_key.pub"])
    if code != 0:
        raise StackError(f"cannot read the login host key: {pub}", "login")
    port = nodes.ssh_port
    stack.known_hosts_path.write_text(known_hosts_line(port, pub.strip()))
    stack.client_config_path.write_text(
        render_client_toml(
            stack.spec,
            key_path=stack.key_path.resolve(),
            known_hosts_path=stack.known_hosts_path.resolve(),
            port=port,
        )
    )
    (stack.state_dir / "stack.json").write_text(
        json.dumps(
            {
                "name": stack.name,
                "variant": stack.variant_name,
                "workers": stack.spec.workers,
                "queues": list(stack.queues),
                "ssh_port": port,
                "cluster": stack.cluster_name,
            },
            indent=2,
        )
        + "\n"
    )
