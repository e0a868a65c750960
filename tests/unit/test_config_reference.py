"""The generated config reference is complete, documented and not stale."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from intercede.config import LocalBatchConfig, SSHBatchConfig
from tools import gen_config_reference as gen


def test_committed_reference_is_current() -> None:
    committed = gen.OUTPUT.read_text()
    assert committed == gen.render(), (
        "docs/reference/config.md is stale: run `python -m tools.gen_config_reference`"
    )


@pytest.mark.parametrize("model", [SSHBatchConfig, LocalBatchConfig])
def test_every_field_is_listed_with_a_description(model: type[BaseModel]) -> None:
    rows = {name: (kind, default, desc) for name, kind, default, desc in gen.field_rows(model)}
    assert set(rows) == set(model.model_fields)
    undocumented = [name for name, (_, _, desc) in rows.items() if not desc.strip()]
    assert undocumented == [], f"give these fields an attribute docstring: {undocumented}"
    page = gen.render()
    for name in model.model_fields:
        assert f"| `{name}` |" in page


def test_types_defaults_and_constraints_are_rendered() -> None:
    rows = {name: (kind, default) for name, kind, default, _ in gen.field_rows(SSHBatchConfig)}
    assert rows["port"] == ("integer (≥ 1, ≤ 65535)", "`22`")
    assert rows["host"] == ("string", "**required**")
    assert rows["queue"] == ("string or none", "unset")
    assert rows["auth"] == ('`"key"` or `"password"`', '`"key"`')
    assert rows["transfer_timeout_s"] == ("number (> 0, ≤ 604800.0)", "`300.0`")
    assert rows["submit_extra"] == ("list of string", "`[]`")
    assert rows["known_hosts"][0] == "path"


def test_docstring_markup_and_table_pipes_are_escaped() -> None:
    class Odd(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        choice: str = Field(default="a|b")
        """Either ``a|b`` or ``c``."""

    [(name, _, default, desc)] = gen.field_rows(Odd)
    assert name == "choice"
    assert desc == "Either `a|b` or `c`."
    assert gen._cell(desc) == "Either `a\\|b` or `c`."
    assert default == '`"a|b"`'


def test_check_fails_on_a_stale_page_and_passes_after_regeneration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "config.md"
    assert gen.main(["--check", "--output", str(out)]) == 1
    out.write_text(gen.render().replace("`22`", "`2222`"))
    assert gen.main(["--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert gen.main(["--output", str(out)]) == 0
    assert gen.main(["--check", "--output", str(out)]) == 0
    assert out.read_text() == gen.render()
