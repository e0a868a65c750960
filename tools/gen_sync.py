"""Generate the sync facade's typed surface from the async protocols and helpers.

``intercede/protocols.py`` is the only hand-written contract. This tool reads it with ``ast``
and writes ``intercede/sync/_generated.py``: a blocking twin of every protocol (same names, same
parameters, defaults, return annotations and docstrings, plus a keyword-only ``timeout``) and
one facade mixin per protocol whose methods dispatch onto the facade's event loop. It also
reads the helpers module (``intercede/waiting.py``): every public module-level ``async def``
whose first parameter is a protocol gets a blocking twin of the same name and signature that
runs the async helper on the facade's loop, over the facade's own backend. Because the
output is committed and ``--check`` compares it with a fresh generation, a protocol change
cannot leave the facade behind silently. The text is laid out by the project's pinned ``ruff``
(import sorting, then ``ruff format``), run as ``python -m ruff`` in this interpreter: the dev
extra that ``just lint`` needs anyway.

    python -m tools.gen_sync            # rewrite the committed file
    python -m tools.gen_sync --check    # exit 1 (with a diff) when it is stale
    python -m tools.gen_sync --input copy/protocols.py --output out.py [--check]
    python -m tools.gen_sync --helpers copy/waiting.py [--check]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_HELPERS",
    "DEFAULT_INPUT",
    "DEFAULT_OUTPUT",
    "GenerationError",
    "check",
    "generate",
    "main",
]

_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = _ROOT / "src" / "intercede" / "protocols.py"
DEFAULT_OUTPUT = _ROOT / "src" / "intercede" / "sync" / "_generated.py"
DEFAULT_HELPERS = _ROOT / "src" / "intercede" / "waiting.py"

_TIMEOUT = "timeout: float | None = None"
# Lifecycle protocols (``Async*``) turn into their sync spelling; they have no dispatching
# mixin because the facade's runtime implements them itself (close the backend, stop the loop).
_LIFECYCLE_PREFIX = "Async"
_LIFECYCLE_METHODS = {"__aenter__": "__enter__", "__aexit__": "__exit__", "aclose": "close"}
_EXTRA_IMPORTS = {"typing": {"cast"}}


class GenerationError(Exception):
    """The protocols module uses a construct the generator cannot carry over faithfully."""


@dataclass
class _Method:
    name: str
    args: ast.arguments
    params: list[str]
    returns: str
    docstring: str | None


@dataclass
class _Protocol:
    name: str
    bases: list[str]
    methods: list[_Method] = field(default_factory=list)

    @property
    def lifecycle(self) -> bool:
        return self.name.startswith(_LIFECYCLE_PREFIX)

    @property
    def twin(self) -> str:
        return self.name.removeprefix(_LIFECYCLE_PREFIX) if self.lifecycle else self.name

    @property
    def mixin(self) -> str:
        return f"_{self.name}Methods"


def _fail(where: str, node: ast.AST, message: str) -> GenerationError:
    return GenerationError(f"{where}:{getattr(node, 'lineno', '?')}: {message}")


def _is_protocol_class(node: ast.ClassDef) -> bool:
    decorated = any(
        isinstance(d, ast.Name) and d.id == "runtime_checkable" for d in node.decorator_list
    )
    return decorated and any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases)


def _parse(source: str, where: str) -> tuple[list[ast.stmt], list[_Protocol]]:
    tree = ast.parse(source, filename=where)
    imports: list[ast.stmt] = []
    protocols: list[_Protocol] = []
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # module docstring
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(node)
        elif isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"]:
            continue
        elif isinstance(node, ast.ClassDef):
            protocols.append(_parse_class(node, source, where))
        else:
            raise _fail(where, node, "only imports, __all__ and protocol classes are supported")
    known = {p.name for p in protocols}
    for protocol in protocols:
        unknown = [b for b in protocol.bases if b not in known]
        if unknown:
            raise _fail(where, tree, f"{protocol.name} derives from non-protocol {unknown}")
    return imports, protocols


def _parse_class(node: ast.ClassDef, source: str, where: str) -> _Protocol:
    if not _is_protocol_class(node):
        raise _fail(where, node, f"{node.name} is not a @runtime_checkable Protocol")
    bases = [ast.unparse(b) for b in node.bases if ast.unparse(b) != "Protocol"]
    protocol = _Protocol(node.name, bases)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    for item in body:
        if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant):
            continue  # a bare ``...``
        if not isinstance(item, ast.AsyncFunctionDef):
            raise _fail(
                where, item, f"{node.name}: only 'async def' members belong in the contract"
            )
        protocol.methods.append(_parse_method(node.name, item, source, where))
    if protocol.lifecycle:
        strange = [m.name for m in protocol.methods if m.name not in _LIFECYCLE_METHODS]
        if strange:
            raise _fail(where, node, f"{node.name}: no sync spelling for {strange}")
    return protocol


def _parse_method(owner: str, node: ast.AsyncFunctionDef, source: str, where: str) -> _Method:
    if node.decorator_list:
        raise _fail(where, node, f"{owner}.{node.name}: decorated methods are not supported")
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    if not every or every[0].arg != "self":
        raise _fail(where, node, f"{owner}.{node.name}: the first parameter must be self")
    for arg in every[1:]:
        if arg.annotation is None:
            raise _fail(where, node, f"{owner}.{node.name}: parameter {arg.arg} has no type")
        if arg.arg == "timeout":
            raise _fail(where, node, f"{owner}.{node.name}: 'timeout' is reserved for the facade")
    if node.returns is None:
        raise _fail(where, node, f"{owner}.{node.name}: no return annotation")
    docstring = None
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        docstring = ast.get_source_segment(source, first.value)
    params = _parameters(args, source)
    return _Method(node.name, args, params, _text(node.returns, source), docstring)


@dataclass
class _Helper:
    name: str
    params: list[str]
    call: list[str]
    returns: str
    docstring: str | None
    first: str


def _parse_helpers(
    source: str, where: str, protocols: dict[str, _Protocol]
) -> tuple[list[ast.stmt], list[_Helper]]:
    """The exported ``async def`` helpers whose first parameter is a protocol, and the imports
    their signatures need (only those: the generated module must not import unused names)."""
    tree = ast.parse(source, filename=where)
    exported: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"]:
            exported = list(ast.literal_eval(node.value))
    helpers: list[_Helper] = []
    used: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.AsyncFunctionDef) or node.name not in exported:
            continue
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        first = positional[0] if positional else None
        protocol = first.annotation if first is not None else None
        if first is None or not isinstance(protocol, ast.Name) or protocol.id not in protocols:
            raise _fail(where, node, f"{node.name}: the first parameter must be a protocol")
        if node.returns is None or any(
            a.annotation is None for a in [*positional, *args.kwonlyargs]
        ):
            raise _fail(where, node, f"{node.name}: every parameter and the result need a type")
        if args.vararg is not None or args.kwarg is not None:
            raise _fail(where, node, f"{node.name}: *args and **kwargs are not supported")
        parts: list[ast.AST] = [*positional[1:], *args.kwonlyargs]
        for part in [*parts, node.returns]:
            used |= {n.id for n in ast.walk(part) if isinstance(n, ast.Name)}
        used |= {
            n.id
            for d in [*args.defaults, *args.kw_defaults]
            if d
            for n in ast.walk(d)
            if isinstance(n, ast.Name)
        }
        params = _parameters(args, source, keep_first=True)
        params[0] = f"{first.arg}: {protocols[protocol.id].twin}"
        call = ["async_backend", *(a.arg for a in positional[1:])]
        call += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
        docstring = None
        head = node.body[0]
        if (
            isinstance(head, ast.Expr)
            and isinstance(head.value, ast.Constant)
            and isinstance(head.value.value, str)
        ):
            docstring = ast.get_source_segment(source, head.value)
        helpers.append(
            _Helper(node.name, params, call, _text(node.returns, source), docstring, first.arg)
        )
    imports: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "protocols":
            names = [a for a in node.names if (a.asname or a.name) in used]
            if names and node.module != "__future__":
                imports.append(ast.ImportFrom(module=node.module, names=names, level=node.level))
        elif isinstance(node, ast.Import):
            names = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
            if names:
                imports.append(ast.Import(names=names))
    return imports, helpers


def _helper(helper: _Helper) -> list[str]:
    lines = [f"def {helper.name}({', '.join(helper.params)}) -> {helper.returns}:"]
    if helper.docstring is not None:
        lines.append(f"    {helper.docstring}")
    call = f"_helpers.{helper.name}({', '.join(helper.call)})"
    lines.append(
        f'    return run_helper({helper.first}, "{helper.name}", lambda async_backend: {call})'
    )
    return lines


def _text(node: ast.expr, source: str) -> str:
    """The expression as written (quotes and all), rather than ``ast.unparse``'s spelling."""
    segment = ast.get_source_segment(source, node)
    return segment if segment is not None and "\n" not in segment else ast.unparse(node)


def _parameters(args: ast.arguments, source: str, *, keep_first: bool = False) -> list[str]:
    """Render the parameters (without ``self``, unless ``keep_first``) exactly as declared."""

    def one(arg: ast.arg, default: ast.expr | None) -> str:
        text = f"{arg.arg}: {_text(arg.annotation, source)}" if arg.annotation else arg.arg
        return f"{text} = {_text(default, source)}" if default is not None else text

    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    out: list[str] = []
    for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        out.append(one(arg, default))
        if args.posonlyargs and index == len(args.posonlyargs) - 1:
            out.append("/")
    if args.vararg is not None:
        out.append("*" + one(args.vararg, None))
    elif args.kwonlyargs:
        out.append("*")
    out += [one(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg is not None:
        out.append("**" + one(args.kwarg, None))
    return out if keep_first else out[1:] if out and out[0].startswith("self") else out


def _with_timeout(args: ast.arguments, params: list[str]) -> list[str]:
    """Insert the facade's keyword-only ``timeout`` before any ``**kwargs``."""
    tail = [params.pop()] if args.kwarg is not None else []
    if args.vararg is None and not args.kwonlyargs:
        params.append("*")
    return [*params, _TIMEOUT, *tail]


def _call_arguments(args: ast.arguments) -> list[str]:
    """Pass positional parameters positionally (a structural fake may name them differently)."""
    out = [a.arg for a in [*args.posonlyargs, *args.args][1:]]
    if args.vararg is not None:
        out.append("*" + args.vararg.arg)
    out += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg is not None:
        out.append("**" + args.kwarg.arg)
    return out


def _def(name: str, params: Sequence[str], returns: str) -> list[str]:
    return [f"    def {name}({', '.join(['self', *params])}) -> {returns}:"]


def _twin(protocol: _Protocol, by_name: dict[str, _Protocol]) -> list[str]:
    bases = [by_name[b].twin for b in protocol.bases]
    lines = [
        "@runtime_checkable",
        f"class {protocol.twin}({', '.join([*bases, 'Protocol'])}):",
        f'    """Blocking twin of ``intercede.protocols.{protocol.name}``."""',
    ]
    for method in protocol.methods:
        params = list(method.params)
        if protocol.lifecycle:
            name = _LIFECYCLE_METHODS[method.name]
        else:
            name, params = method.name, _with_timeout(method.args, params)
        lines.append("")
        signature = _def(name, params, method.returns)
        if method.docstring is None:
            signature[-1] += " ..."
            lines += signature
        else:
            lines += [*signature, f"        {method.docstring}", "        ..."]
    return lines


def _mixin(protocol: _Protocol, by_name: dict[str, _Protocol]) -> list[str]:
    parts = [by_name[b] for b in protocol.bases if not by_name[b].lifecycle]
    bases = [p.mixin for p in parts] or ["FacadeCore"]
    lines = [
        f"class {protocol.mixin}({', '.join(bases)}):",
        f'    """Facade methods for ``{protocol.name}``, mixed in when the backend has them."""',
    ]
    for method in protocol.methods:
        lines.append("")
        params = _with_timeout(method.args, list(method.params))
        lines += _def(method.name, params, method.returns)
        if method.docstring is not None:
            lines.append(f"        {method.docstring}")
        lines.append(f"        backend = cast(_async.{protocol.name}, self._backend)")
        call = f"lambda: backend.{method.name}({', '.join(_call_arguments(method.args))})"
        lines.append(f'        return self._dispatch("{method.name}", {call}, timeout)')
    return lines


def _imports(nodes: Iterable[ast.stmt], *, helpers: bool = False) -> list[str]:
    """Re-emit the source's imports one package level deeper (``ruff`` orders them)."""
    modules: dict[tuple[int, str], dict[str, str | None]] = {}
    plain: list[str] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            level = node.level + 1 if node.level else 0
            names = modules.setdefault((level, node.module or ""), {})
            names.update({alias.name: alias.asname for alias in node.names})
        elif isinstance(node, ast.Import):
            plain += [ast.unparse(ast.Import(names=[alias])) for alias in node.names]
    for module, extra in _EXTRA_IMPORTS.items():
        modules.setdefault((0, module), {}).update(dict.fromkeys(extra))
    modules.setdefault((2, ""), {})["protocols"] = "_async"
    modules.setdefault((1, "_core"), {})["FacadeCore"] = None
    if helpers:
        modules.setdefault((2, ""), {})["waiting"] = "_helpers"
        modules[(1, "_core")]["run_helper"] = None
    lines = ["from __future__ import annotations", "", *plain]
    for (level, module), names in modules.items():
        items = [f"{n} as {a}" if a else n for n, a in names.items()]
        lines.append(f"from {'.' * level}{module} import {', '.join(items)}")
    return lines


def _ruff(text: str) -> str:
    """Sort the imports and format the module with the project's pinned ``ruff``.

    The generator lays nothing out itself, so its output is exactly what ``just lint`` wants
    whatever the ruff version's style; the project's ``pyproject.toml`` supplies the settings
    even when ``--output`` points outside the repository.
    """
    config = ["--config", str(_ROOT / "pyproject.toml"), "--stdin-filename", "_generated.py"]
    steps = [
        ["check", *config, "--select", "I", "--fix", "--exit-zero", "--quiet", "-"],
        ["format", *config, "--quiet", "-"],
    ]
    for step in steps:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "ruff", *step],
                input=text,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GenerationError(f"cannot run ruff {step[0]}: {exc}") from exc
        if done.returncode != 0:
            raise GenerationError(
                f"ruff {step[0]} failed on the generated module (is the dev extra, with the "
                f"pinned ruff, installed?): {done.stderr.strip()}"
            )
        text = done.stdout
    return text


_HEADER = '''\
# Generated by tools/gen_sync.py from intercede/protocols.py: do not edit.
# Regenerate with `just generate`; `just lint` (python -m tools.gen_sync --check) fails when stale.
"""The sync facade's typed surface, generated from the async protocols.

Twins: blocking protocols with the same names as the async ones, each method taking the same
parameters plus a keyword-only ``timeout``. Mixins: the facade's methods, one class per protocol,
each dispatching the async call onto the facade's event loop; ``CAPABILITIES`` says which mixin
a backend gets for which async protocol it satisfies. Helpers: blocking twins of the async
helpers (``intercede.waiting``), run on the facade's loop over its own backend.
"""
'''


def generate(
    source: str,
    where: str = "protocols.py",
    helpers_source: str | None = None,
    helpers_where: str = "waiting.py",
) -> str:
    """The text of ``_generated.py`` for the protocols module ``source`` and, when given, the
    helpers module ``helpers_source``."""
    imports, protocols = _parse(source, where)
    by_name = {p.name: p for p in protocols}
    helpers: list[_Helper] = []
    if helpers_source is not None:
        helper_imports, helpers = _parse_helpers(helpers_source, helpers_where, by_name)
        imports = [*imports, *helper_imports]
    dispatching = [p for p in protocols if not p.lifecycle]
    capabilities = [p for p in dispatching if p.methods]
    names = sorted([*(p.twin for p in protocols), *(h.name for h in helpers)])
    out = [_HEADER, *_imports(imports, helpers=bool(helpers)), "", "__all__ = ["]
    out += [f'    "{name}",' for name in names]
    out.append("]")
    for protocol in protocols:
        out += ["", "", *_twin(protocol, by_name)]
    for protocol in dispatching:
        out += ["", "", *_mixin(protocol, by_name)]
    for helper in helpers:
        out += ["", "", *_helper(helper)]
    out += [
        "",
        "",
        "# (async protocol, sync twin, facade mixin) for every protocol with its own methods.",
        "CAPABILITIES: tuple[tuple[type, type, type[FacadeCore]], ...] = (",
        *(f"    (_async.{p.name}, {p.twin}, {p.mixin})," for p in capabilities),
        ")",
        "",
        "# The type checker proves every mixin satisfies its twin.",
        *(f"_{p.twin}_proof: type[{p.twin}] = {p.mixin}" for p in dispatching),
    ]
    return _ruff("\n".join(out) + "\n")


def _generate_files(input_path: Path, helpers_path: Path | None) -> str:
    return generate(
        input_path.read_text(),
        str(input_path),
        helpers_path.read_text() if helpers_path is not None else None,
        str(helpers_path),
    )


def check(
    input_path: Path, output_path: Path, helpers_path: Path | None = DEFAULT_HELPERS
) -> str | None:
    """``None`` when ``output_path`` is what ``generate`` makes of ``input_path`` (and
    ``helpers_path``), else a diff."""
    fresh = _generate_files(input_path, helpers_path)
    current = output_path.read_text() if output_path.exists() else ""
    if fresh == current:
        return None
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        fresh.splitlines(keepends=True),
        fromfile=f"{output_path} (committed)",
        tofile=f"{output_path} (from {input_path.name})",
    )
    return "".join(diff)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gen_sync", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="protocols module")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="generated module")
    parser.add_argument(
        "--helpers", type=Path, default=DEFAULT_HELPERS, help="helpers module (async functions)"
    )
    options = parser.parse_args(argv)
    try:
        if options.check:
            diff = check(options.input, options.output, options.helpers)
            if diff is None:
                return 0
            print(diff, end="", file=sys.stderr)
            print(
                f"gen_sync: {options.output} is stale against {options.input}; "
                "run `just generate` (python -m tools.gen_sync)",
                file=sys.stderr,
            )
            return 1
        text = _generate_files(options.input, options.helpers)
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(text)
    except (GenerationError, OSError, SyntaxError) as exc:
        print(f"gen_sync: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
