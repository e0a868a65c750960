"""The harness CLI and pytest plugin must work on machines without a container engine."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from harness.__main__ import COMMANDS, build_parser, main

JUSTFILE_CALLS = [
    ["e2e", "--variant", "trixie", "--keep"],
    ["e2e", "--variant", "bookworm"],
    ["regress", "--variants", "bookworm,trixie"],
    ["up", "--variant", "trixie"],
    ["down"],
    ["logs"],
    ["status"],
    ["ssh"],
    ["engine"],
    ["pins"],
    ["config-path"],
]


def test_every_command_is_in_the_one_table_and_loads() -> None:
    names = [c.name for c in COMMANDS]
    assert names == [
        "engine",
        "up",
        "down",
        "status",
        "logs",
        "ssh",
        "config-path",
        "e2e",
        "regress",
        "pins",
    ]
    for cmd in COMMANDS:
        configure, run = cmd.load()
        assert callable(configure), cmd.name
        assert callable(run), cmd.name


@pytest.mark.parametrize("argv", JUSTFILE_CALLS, ids=lambda a: " ".join(a))
def test_the_justfile_invocations_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
    assert callable(args._run)


def test_up_arguments() -> None:
    args = build_parser().parse_args(
        ["up", "--variant", "trixie", "--workers", "3", "--image", "img:1", "--name", "x"]
    )
    assert (args.variant, args.workers, args.image, args.name) == ("trixie", 3, "img:1", "x")
    assert args.partitions == "main,second"


def test_e2e_takes_image_like_up() -> None:
    args = build_parser().parse_args(["e2e", "--image", "intercede-slurm-stack:nix", "--keep"])
    assert (args.image, args.keep) == ("intercede-slurm-stack:nix", True)
    assert build_parser().parse_args(["e2e"]).image is None  # then INTERCEDE_STACK_IMAGE applies


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["up", "--workers", "0"], "--workers: must be at least 1, got 0"),
        (["up", "--workers", "two"], "--workers: not a whole number: 'two'"),
        (["down", "--name", "Bad Name"], "--name: stack name 'Bad Name'"),
    ],
)
def test_bad_arguments_name_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_a_stack_command_imports_neither_e2e_nor_regress() -> None:
    # Those modules made unimportable: parsing `down` must not touch them.
    out = _child(
        "import sys\n"
        "for m in ('harness.e2e', 'harness.regress', 'harness.pins', 'harness.pins_cli',\n"
        "          'intercede._cli'):\n"
        "    sys.modules[m] = None\n"
        "from harness.__main__ import build_parser\n"
        "print(build_parser(only='down').parse_args(['down', '--name', 'x']).name)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "x"


def test_help_lists_every_command_without_importing_them() -> None:
    out = _child(
        "import sys\n"
        "for m in ('harness.e2e', 'harness.regress', 'harness.pins', 'harness.pins_cli',\n"
        "          'harness._stack_cli'):\n"
        "    sys.modules[m] = None\n"
        "from harness.__main__ import main\n"
        "main(['--help'])\n"
    )
    assert out.returncode == 0, out.stderr
    for cmd in COMMANDS:
        assert cmd.name in out.stdout


def test_plugin_and_cli_import_without_docker() -> None:
    # A child interpreter where importing docker fails, as on a machine without the SDK.
    out = _child(
        "import sys; sys.modules['docker'] = None\n"
        "import harness.pytest_plugin, harness.__main__, harness.config, harness.readiness\n"
        "import harness._lock, harness.pins\n"
        "print('ok')\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_every_harness_module_declares_all() -> None:
    for name in (
        "__main__",
        "_lock",
        "_stack_cli",
        "cluster",
        "config",
        "e2e",
        "engine",
        "faults",
        "image",
        "lifecycle",
        "nodes",
        "pins",
        "pins_cli",
        "provision",
        "pytest_plugin",
        "readiness",
        "regress",
        "stack",
    ):
        module = importlib.import_module(f"harness.{name}")
        assert isinstance(module.__all__, list)
        assert all(hasattr(module, item) for item in module.__all__), name


def test_config_path_prints_the_stacks_client_config_or_says_why_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import uuid

    from harness.config import state_dir

    name = f"cfgpath{uuid.uuid4().hex[:8]}"
    assert main(["config-path", "--name", name]) == 1
    assert "bring the stack up first" in capsys.readouterr().err
    directory = state_dir(name)
    directory.mkdir(parents=True)
    try:
        (directory / "client.toml").write_text("[queues.main]\n")
        assert main(["config-path", "--name", name]) == 0
        assert capsys.readouterr().out.strip() == str(directory / "client.toml")
    finally:
        (directory / "client.toml").unlink()
        directory.rmdir()
