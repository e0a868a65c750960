"""The harness CLI and pytest plugin must work on machines without a container engine."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from harness.__main__ import COMMANDS, Command, build_parser


def test_core_subcommands_are_registered() -> None:
    names = {c.name for c in COMMANDS}
    assert {"engine", "up", "down", "status", "logs", "ssh"} <= names


def test_up_arguments() -> None:
    args = build_parser().parse_args(
        ["up", "--variant", "trixie", "--workers", "3", "--image", "img:1", "--name", "x"]
    )
    assert (args.variant, args.workers, args.image, args.name) == ("trixie", 3, "img:1", "x")


def test_new_commands_plug_in_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = Command("hello", "say hello", lambda p: None, lambda a: 0)
    monkeypatch.setattr("harness.__main__.COMMANDS", [*COMMANDS, extra])
    assert build_parser().parse_args(["hello"]).command == "hello"


def test_plugin_and_cli_import_without_docker() -> None:
    # A child interpreter where importing docker fails, as on a machine without the SDK.
    code = (
        "import sys; sys.modules['docker'] = None\n"
        "import harness.pytest_plugin, harness.__main__, harness.config, harness.readiness\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_every_harness_module_declares_all() -> None:
    for name in ("cluster", "config", "engine", "faults", "image", "pytest_plugin", "readiness"):
        module = importlib.import_module(f"harness.{name}")
        assert isinstance(module.__all__, list)
        assert all(hasattr(module, item) for item in module.__all__)
