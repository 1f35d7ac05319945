"""The ``snakepit`` command (also ``python -m snakepit``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from snakepit.errors import SnakepitError

Command = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snakepit", description="Pools of external worker processes on a trio tree.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from snakepit.cli import cleanup, demo, diagnose, inspect, setup
    for module in (demo, inspect, cleanup, diagnose, setup):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except SnakepitError as exc:
        print(f"snakepit {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM (snakepit.sigterm): 128 + signal
        return 128 + int(getattr(exc, "signum", 2))
    except BrokenPipeError:
        # The reader went away (`snakepit inspect --format json | head -1`): that is not an
        # error. Point stdout at /dev/null so the interpreter's final flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
