"""Drift: the DIRAC members the mapping doc and the InterCEde CE rely on, in the pinned DIRAC.

``data/dirac/probe.py`` runs with the DIRAC environment's Python (``./just dirac-env`` makes
``.venv-dirac`` with DIRAC 9.1.22 and the extension), imports every member and describes it by
introspection: its signature and the class that defines it, or its value. ``data/dirac/
members.json`` is what those descriptions must be. Moving the DIRAC pin means running the probe
again, reading the difference against DIRAC's code, and updating the doc, the extension and
this table together. The doc's own tables (the members it cites, the ``Errno`` table, the
configuration keys) are checked against the same probe output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "dirac"
PROBE = DATA / "probe.py"
EXPECTED: dict[str, dict[str, Any]] = json.loads((DATA / "members.json").read_text())
DOC = REPO / "docs" / "migration" / "dirac.md"
DIRAC_VERSION = "9.1.22"
BASE = "DIRAC.Resources.Computing.ComputingElement.ComputingElement"
CE_MODULE = "InterCEdeDIRAC.Resources.Computing.InterCEdeComputingElement"
CE = f"{CE_MODULE}.InterCEdeComputingElement"
INCUMBENT = "DIRAC.Resources.Computing.SSHComputingElement.SSHComputingElement"
ERRNO = "DIRAC.Core.Utilities.DErrno"
TICKED = re.compile(r"`([^`]+)`")


def dirac_python() -> Path:
    """The DIRAC environment's interpreter; its absence is a failure, never a skip."""
    venv = os.environ.get("INTERCEDE_DIRAC_VENV", ".venv-dirac")
    python = REPO / venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no DIRAC environment at {venv}/: run ./just dirac-env")
    return python


def table(doc: str, name: str) -> list[list[str]]:
    """The body rows of the table between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", doc, re.DOTALL)
    assert match, f"docs/migration/dirac.md has no '{name}' table markers"
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]
    assert rows, f"the '{name}' table is empty"
    return rows


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def doc_members(doc: str) -> dict[str, str]:
    """``{dotted name: signature or JSON value}`` of the doc's member table."""
    members = {}
    for row in table(doc, "dirac-members"):
        (name,), (described,) = TICKED.findall(row[0]), TICKED.findall(row[1])
        assert name not in members, f"{name} is listed twice"
        members[name] = described
    return members


@pytest.fixture(scope="module")
def probed(doc: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    python = dirac_python()
    work = tmp_path_factory.mktemp("dirac-probe")
    names, out = work / "names.json", work / "members.json"
    names.write_text(json.dumps(sorted(EXPECTED.keys() | doc_members(doc).keys())))
    run = subprocess.run(
        [str(python), str(PROBE), str(names), str(out)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, f"the probe failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    result: dict[str, dict[str, Any]] = json.loads(out.read_text())
    return result


def value(probed: dict[str, dict[str, Any]], name: str) -> Any:
    assert "value" in probed[name], f"{name}: {probed[name]}"
    return probed[name]["value"]


def parameters(signature: str) -> list[str]:
    """Parameter names of a rendered signature such as ``(self, jobID, localDir=None)``."""
    inner = signature.strip()[1:-1]
    return [part.split("=")[0].strip().lstrip("*") for part in inner.split(",") if part.strip()]


def test_missing_dirac_environment_fails_naming_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERCEDE_DIRAC_VENV", ".venv-dirac-that-does-not-exist")
    with pytest.raises(pytest.fail.Exception, match=r"run \./just dirac-env"):
        dirac_python()


def test_the_probe_runs_the_pinned_release(probed: dict[str, dict[str, Any]], doc: str) -> None:
    assert value(probed, "DIRAC.version") == DIRAC_VERSION
    assert f"DIRAC {DIRAC_VERSION}" in doc


def test_every_member_is_as_expected(probed: dict[str, dict[str, Any]]) -> None:
    drifted = {
        name: {"expected": want, "probed": probed.get(name)}
        for name, want in EXPECTED.items()
        if probed.get(name) != want
    }
    assert not drifted, (
        "DIRAC or the extension drifted from tests/unit/data/dirac/members.json:\n"
        + json.dumps(drifted, indent=1)
    )


def test_doc_cites_only_pinned_members_as_they_are(
    probed: dict[str, dict[str, Any]], doc: str
) -> None:
    for name, described in doc_members(doc).items():
        assert name in EXPECTED, f"the doc cites {name}, which members.json does not pin"
        got = probed[name]
        assert "error" not in got, f"{name}: {got['error']}"
        if "signature" in got:
            assert described == got["signature"], (
                f"{name}: the doc says {described}, DIRAC has {got['signature']}"
            )
        else:
            assert json.loads(described) == got["value"], (
                f"{name}: the doc says {described}, DIRAC has {got['value']}"
            )


def test_doc_member_table_covers_the_consumers_calls(doc: str) -> None:
    cited = doc_members(doc)
    for member in (
        "setParameters",
        "isValid",
        "available",
        "getDescription",
        "setCPUTimeLeft",
        "shutdown",
        "setProxy",
        "setToken",
        "submitJob",
        "getCEStatus",
    ):
        assert f"{BASE}.{member}" in cited, (
            f"the doc's member table lacks ComputingElement.{member}"
        )
    for member in ("getJobStatus", "getJobOutput", "getJobLog", "killJob", "cleanJob"):
        assert f"{CE}.{member}" in cited, (
            f"the doc's member table lacks InterCEdeComputingElement.{member}"
        )


def test_extension_inherits_dirac_s_own_computations(probed: dict[str, dict[str, Any]]) -> None:
    """Slots (``available``), the matching description and the credential setters are DIRAC's:
    the extension feeds them (``getCEStatus``, ``ceParameters``) and must not replace them."""
    for member in (
        "available",
        "getDescription",
        "isValid",
        "setCPUTimeLeft",
        "setProxy",
        "setToken",
    ):
        assert probed[f"{CE}.{member}"]["defined_in"] == BASE, member
    for member in ("setParameters", "_reset", "shutdown", "submitJob", "getCEStatus"):
        assert probed[f"{CE}.{member}"]["defined_in"] == CE, member
        base = [p for p in parameters(probed[f"{BASE}.{member}"]["signature"]) if p != "kwargs"]
        ours = parameters(probed[f"{CE}.{member}"]["signature"])
        assert ours[: len(base)] == base, f"{member}: ComputingElement {base}, InterCEde CE {ours}"


def test_extension_accepts_every_argument_of_the_incumbent(
    probed: dict[str, dict[str, Any]],
) -> None:
    """Callers written for the SSH CE pass the same arguments to the extension."""
    for member in (
        "submitJob",
        "getJobStatus",
        "getJobOutput",
        "killJob",
        "getCEStatus",
        "shutdown",
    ):
        incumbent = parameters(probed[f"{INCUMBENT}.{member}"]["signature"])
        ours = parameters(probed[f"{CE}.{member}"]["signature"])
        assert ours[: len(incumbent)] == incumbent, (
            f"{member}: SSH CE {incumbent}, InterCEde CE {ours}"
        )


def test_errno_table_is_the_extension_s(probed: dict[str, dict[str, Any]], doc: str) -> None:
    documented = []
    for row in table(doc, "errno-table"):
        (exception,), (name,) = TICKED.findall(row[0]), TICKED.findall(row[1])
        number = re.search(r"\((\d+)\)", row[1])
        assert number, f"{row[1]}: no errno number"
        assert value(probed, f"{ERRNO}.{name}") == int(number.group(1)), f"DErrno.{name}"
        documented.append([f"intercede.errors.{exception}", int(number.group(1))])
    assert documented == value(probed, f"{CE_MODULE}.ERRNO_BY_EXCEPTION")


def test_config_key_table_is_the_extension_s(probed: dict[str, dict[str, Any]], doc: str) -> None:
    rows = table(doc, "config-keys")
    by_key = {key: row for row in rows for key in TICKED.findall(row[0])}
    for option, (field, _) in value(probed, f"{CE_MODULE}.CONFIG_OPTIONS").items():
        assert option in by_key, (
            f"the extension reads {option}; the doc's key table does not list it"
        )
        assert field in TICKED.findall(by_key[option][1]), (
            f"{option} → {field}, the doc says {by_key[option][1]}"
        )
    for field, (option, _) in value(probed, f"{CE_MODULE}.RESOURCE_OPTIONS").items():
        assert f"Resources.{field}" in by_key[option][2], f"{option} → Resources.{field}"
    for option in value(probed, f"{CE_MODULE}.REFUSED_OPTIONS"):
        assert by_key[option][2] == "refused", option
    documented = {
        key
        for key, row in by_key.items()
        if any(f.startswith("Resources.") for f in TICKED.findall(row[2]))
    }
    read = {option for option, _ in value(probed, f"{CE_MODULE}.RESOURCE_OPTIONS").values()}
    assert documented == read, (
        f"resource keys the doc and the extension disagree on: {documented ^ read}"
    )


def test_diagnostic_stream_names_are_the_extension_s(
    probed: dict[str, dict[str, Any]], doc: str
) -> None:
    for stream, name in value(probed, f"{CE_MODULE}.STREAMS").items():
        assert f'`"{name}"`' in doc, f"the doc does not say {stream} is read as {name!r}"
