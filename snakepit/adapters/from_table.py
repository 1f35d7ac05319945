"""Adapters from TOML: a ``[pools.adapter]`` table names its ``kind`` and the adapter's fields.

    [pools.adapter]
    kind = "node"            # python | node | ruby | command
    script = "tools.js"      # relative to the TOML file
    capacity = 8

is ``NodeAdapter(script="<dir of the file>/tools.js", capacity=8)``. Anything a kind cannot
mean (an unknown kind or key, a missing script) is a ConfigError at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from snakepit.adapters.command import CommandAdapter
from snakepit.adapters.node import NodeAdapter
from snakepit.adapters.python import PythonAdapter
from snakepit.adapters.ruby import RubyAdapter
from snakepit.errors import ConfigError

KINDS: dict[str, type] = {"python": PythonAdapter, "node": NodeAdapter, "ruby": RubyAdapter,
                          "command": CommandAdapter}


def _relative_to(base: Path, value: Any) -> Any:
    """A relative path string made absolute against ``base`` (other values unchanged)."""
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(base / value)
    return value


def adapter_from_table(table: Any, where: str, base: Path) -> Any:
    """The adapter object a ``[pools.adapter]`` table describes (see the module docstring)."""
    from snakepit.config import build_table

    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    raw = dict(table)
    kind = raw.pop("kind", None)
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(map(repr, KINDS))}, "
                          f"got {kind!r}",
                          details={"field": f"{where}.kind", "value": repr(kind),
                                   "allowed": ", ".join(KINDS)})
    if "script" in raw:
        raw["script"] = _relative_to(base, raw["script"])
    if "workdir" in raw:
        raw["workdir"] = _relative_to(base, raw["workdir"])
    if kind == "command" and isinstance(raw.get("argv"), list) and raw["argv"] and \
            isinstance(raw["argv"][0], str) and "/" in raw["argv"][0]:
        raw["argv"] = [_relative_to(base, raw["argv"][0]), *raw["argv"][1:]]
    if kind == "python" and "adapter_args" in raw and not isinstance(raw["adapter_args"], list):
        raise ConfigError(f"{where}.adapter_args must be a list of strings, "
                          f"got {raw['adapter_args']!r}")
    klass, here = KINDS[kind], f"{where} (kind {kind!r})"
    missing = [a.name for a in attrs.fields(klass)
               if a.default is attrs.NOTHING and a.name not in raw]
    if missing:
        raise ConfigError(f"{here} needs {', '.join(missing)}",
                          details={"field": f"{where}.{missing[0]}", "allowed": "a value"})
    try:
        return build_table(klass, raw, here)
    except ConfigError as exc:   # the adapter's own check (e.g. a script that does not exist)
        if where in exc.message:
            raise
        raise ConfigError(f"{here}: {exc.message}", details=exc.details) from None
