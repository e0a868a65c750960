"""Describe DIRAC members by introspection; run with the DIRAC environment's Python.

    probe.py NAMES.json OUT.json

``NAMES.json`` is a list of dotted names. Each is resolved by importing its longest importable
module prefix and following attributes; ``Class()`` in a name instantiates the class with one
argument (a CE name) to reach an instance attribute. ``OUT.json`` maps every name to:

- ``{"signature": ..., "defined_in": ...}`` for a callable: its parameters without
  annotations, and the class of the MRO whose ``__dict__`` holds a method (or the module of a
  function or class),
- ``{"value": ...}`` for a constant or an instance attribute that JSON can hold (a class
  inside it as its dotted name),
- ``{"type": ...}`` for any other instance attribute,
- ``{"error": ...}`` for a name that does not resolve.

The result goes to a file because DIRAC's logger writes to stdout.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from typing import Any

INSTANCE = "()"


def resolve(name: str) -> tuple[Any, Any]:
    """``(owner, obj)``: the object ``name`` denotes and what it was read from."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        break
    else:
        raise LookupError(f"no importable module in {name}")
    owner: Any = None
    for part in parts[cut:]:
        owner = obj
        if part.endswith(INSTANCE):
            obj = getattr(obj, part.removesuffix(INSTANCE))("probe")
        else:
            obj = getattr(obj, part)
    return owner, obj


def defining_class(owner: Any, attribute: str) -> str | None:
    cls = owner if inspect.isclass(owner) else type(owner)
    for klass in inspect.getmro(cls):
        if attribute in vars(klass):
            return f"{klass.__module__}.{klass.__qualname__}"
    return None


def plain_signature(obj: Any) -> str:
    """Parameter names, kinds and defaults; annotations left out (some of DIRAC's name a
    module, whose repr carries the installation path)."""
    signature = inspect.signature(obj)
    empty = inspect.Parameter.empty
    parameters = [p.replace(annotation=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=parameters, return_annotation=empty))


def describe(name: str) -> dict[str, Any]:
    try:
        owner, obj = resolve(name)
    except (LookupError, AttributeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    attribute = name.rsplit(".", 1)[-1]
    if callable(obj) and not isinstance(obj, (str, bytes, int, float, list, tuple, dict)):
        entry: dict[str, Any] = {"signature": plain_signature(obj)}
        if inspect.isclass(owner) or (owner is not None and not inspect.ismodule(owner)):
            entry["defined_in"] = defining_class(owner, attribute)
        else:
            entry["defined_in"] = getattr(obj, "__module__", None)
        return entry
    try:
        return {"value": jsonable(obj)}
    except TypeError:
        return {"type": type(obj).__name__}


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON data; a class becomes its dotted name (tables like ``(option, int)``)."""
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if inspect.isclass(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, (set, frozenset)):
        return sorted(jsonable(item) for item in obj)
    if isinstance(obj, (list, tuple)):
        return [jsonable(item) for item in obj]
    if isinstance(obj, dict):
        return {str(key): jsonable(value) for key, value in obj.items()}
    raise TypeError(type(obj).__name__)


def main(names_file: str, out_file: str) -> int:
    with open(names_file) as stream:
        names = json.load(stream)
    result = {name: describe(name) for name in names}
    with open(out_file, "w") as stream:
        json.dump(result, stream, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
