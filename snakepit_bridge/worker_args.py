"""The worker's command line (``python -m snakepit_bridge --adapter module:Class ...``).

    args = parse_args(["--adapter", "mymodule:MyAdapter", "--ready-fd", "5"])
    args.adapter, args.ready_fd, args.log_level     # 'mymodule:MyAdapter', 5, 'info'

One table of options (``OPTIONS``) makes both parsers: a command line of plain ``--flag value``
/ ``--flag=value`` pairs, which is what the host writes, is read directly; anything else
(``--help``, an unknown or abbreviated flag, a value that does not convert) goes to argparse,
which parses it or exits with its usual usage error. argparse is not imported otherwise: it
cost each worker ~0.4 MB of memory and a few ms of start-up.
"""

from __future__ import annotations

import functools
import os
import types
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import argparse

LOG_LEVELS = ("debug", "info", "warning", "error", "none")
_REQUIRED = object()

# flag, type (bool: a switch), default, choices, help
OPTIONS: tuple[tuple[str, Callable[[str], Any], Any, tuple[str, ...] | None, str | None], ...] = (
    ("--adapter", str, _REQUIRED, None, "module.path:ClassName"),
    ("--worker-id", str, None, None, "default: worker-<pid>"),
    ("--ready-fd", int, None, None, "fd to write the readiness line to (default: stdout)"),
    ("--host-address", str, "", None, None),
    ("--max-concurrency", int, 1, None, None),
    ("--log-level", str, "info", LOG_LEVELS, None),
    ("--heartbeat-interval", float, 2.0, None, None),
    ("--heartbeat-timeout", float, 10.0, None, None),
    ("--no-dependent", bool, False, None, None),
    ("--shutdown-grace", float, 5.0, None, None),
    ("--pipe-fd", int, None, None,
     "serve the pipe transport on this inherited socket instead of gRPC"),
)
_BY_FLAG = {option[0]: option for option in OPTIONS}


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def parse_args(argv: list[str]) -> types.SimpleNamespace:
    """The options in ``argv`` (one attribute per option, defaults filled in); a command line
    that is not plain ``--flag value`` pairs is argparse's (which may exit with usage)."""
    fast = _plain(argv)
    if fast is not None:
        return fast
    return types.SimpleNamespace(**vars(parser().parse_args(argv)))


def _plain(argv: list[str]) -> types.SimpleNamespace | None:
    values = {_dest(flag): default for flag, _, default, _, _ in OPTIONS}
    i = 0
    while i < len(argv):
        flag, eq, raw = argv[i].partition("=")
        option = _BY_FLAG.get(flag)
        if option is None:
            return None
        _, kind, _, choices, _ = option
        if kind is bool:
            if eq:
                return None
            values[_dest(flag)] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None   # argparse decides what "-..." is
            raw = argv[i + 1]
        i += 1 if eq else 2
        try:
            value = kind(raw)
        except ValueError:
            return None
        if choices is not None and value not in choices:
            return None
        values[_dest(flag)] = value
    if any(value is _REQUIRED for value in values.values()):
        return None
    return types.SimpleNamespace(**values)


@functools.cache
def parser() -> "argparse.ArgumentParser":
    """argparse's parser of the same options: for ``--help`` and usage errors."""
    import argparse

    class Formatter(argparse.HelpFormatter):
        # the width from os.get_terminal_size: argparse asks shutil, whose import (with bz2
        # and lzma) is not worth it for a parser that rarely prints
        def __init__(self, prog: str) -> None:
            try:
                width = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(2).columns
            except (ValueError, OSError):
                width = 80
            super().__init__(prog, width=max(width - 2, 40))

    p = argparse.ArgumentParser(prog="python -m snakepit_bridge", formatter_class=Formatter,
                                description="Run a snakepit worker for an adapter class.")
    for flag, kind, default, choices, text in OPTIONS:
        if kind is bool:
            p.add_argument(flag, action="store_true", help=text)
        elif default is _REQUIRED:
            p.add_argument(flag, type=kind, required=True, help=text)
        else:
            p.add_argument(flag, type=kind, default=default, choices=choices, help=text)
    return p
