"""tools/debian-deps.sh (`just deps`) installs only what is missing from PATH, and says so.

Each test runs the real script with a PATH made of stub programs: the tools that count as
present, and an ``apt-get`` (plus ``id`` pretending to be root) that records how it was called
instead of installing anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "debian-deps.sh"
SH = shutil.which("sh") or "/bin/sh"  # the Nix build sandbox has no /bin/bash
TOOLS = {
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
    "nix-instantiate": "nix-bin",
    "shellcheck": "shellcheck",
}


def _stub(directory: Path, name: str, body: str = "exit 0") -> None:
    path = directory / name
    path.write_text(f"#!{SH}\n{body}\n")
    path.chmod(0o755)


def _run(
    tmp_path: Path, present: set[str], *args: str, root: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for program in present:
        _stub(bindir, program)
    calls = tmp_path / "apt-calls"
    _stub(bindir, "apt-get", f'echo "$*" >> {calls}')
    _stub(bindir, "id", "echo 0" if root else "echo 1000")
    env_program, bash = shutil.which("env"), shutil.which("bash")
    assert env_program is not None
    assert bash is not None
    (bindir / "env").symlink_to(env_program)
    proc = subprocess.run(
        [bash, str(SCRIPT), *args],
        env={"PATH": str(bindir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc, calls.read_text().splitlines() if calls.exists() else []


def _debootstrap_outside_path() -> bool:
    return os.access("/usr/sbin/debootstrap", os.X_OK)


def test_nothing_is_installed_when_every_tool_is_on_path(tmp_path: Path) -> None:
    proc, apt = _run(tmp_path, set(TOOLS))
    assert proc.returncode == 0, proc.stderr
    assert "all present" in proc.stderr
    assert "nothing to install" in proc.stderr
    assert apt == []


def test_dry_run_names_what_it_would_install_and_installs_nothing(tmp_path: Path) -> None:
    proc, apt = _run(tmp_path, {"debootstrap", "ssh-keygen"}, "--dry-run")
    assert proc.returncode == 1
    assert "nix-instantiate not found (Debian package nix-bin)" in proc.stderr
    assert "would install: nix-bin shellcheck" in proc.stderr
    assert apt == []


def test_only_the_missing_packages_are_installed(tmp_path: Path) -> None:
    proc, apt = _run(tmp_path, {"debootstrap", "ssh-keygen", "nix-instantiate"})
    assert proc.returncode == 0, proc.stderr
    assert "installing Debian packages: shellcheck" in proc.stderr
    assert apt == ["update -qq", "install -y -qq --no-install-recommends shellcheck"]


def test_without_root_or_sudo_it_says_what_to_install(tmp_path: Path) -> None:
    present = {"ssh-keygen"} | ({"debootstrap"} if not _debootstrap_outside_path() else set())
    proc, apt = _run(tmp_path, present, root=False)
    assert proc.returncode == 1
    assert "apt-get install nix-bin shellcheck" in proc.stderr
    assert apt == []


def test_an_unknown_option_is_refused(tmp_path: Path) -> None:
    proc, apt = _run(tmp_path, set(TOOLS), "--yes")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert apt == []


@pytest.mark.parametrize("program", sorted(TOOLS))
def test_the_flake_provides_every_program_the_script_checks(program: str) -> None:
    """Under `nix develop` / `nix run .#e2e` the script must find everything on PATH."""
    flake = (ROOT / "flake.nix").read_text()
    provider = {
        "debootstrap": "pkgs.debootstrap",
        "ssh-keygen": "pkgs.openssh",
        "nix-instantiate": "pkgs.nix",
        "shellcheck": "pkgs.shellcheck",
    }[program]
    tools = flake.split("tools = [", 1)[1].split("];", 1)[0]
    assert provider in tools
