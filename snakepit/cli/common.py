"""What several commands share: loading --config, finding and picking running applications.

Every running application serves its own admin socket, so several may run under one state
directory (with one instance name or several). A command that reads one app uses the only one
running, or asks which (on a terminal), or lists them and fails (without a terminal):

    apps = pick(args)            # [snapshot, ...]: one app, or every one with --all
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from snakepit.config import Config
from snakepit.errors import SnakepitError


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="a snakepit.toml file")
    p.add_argument("--instance", default=None,
                   help="only apps of this instance name (default: any; cleanup: the config's)")
    p.add_argument("--state-dir", default=None, help="state directory (default: the config's)")


def add_pick_flags(p: argparse.ArgumentParser) -> None:
    """``--run`` / ``--all``: which of several running apps a command reads."""
    add_config_flags(p)
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="the app with this run id (a prefix is enough) when several run")
    p.add_argument("--all", action="store_true", help="every running app")


def load(args: argparse.Namespace) -> tuple[Config, Path, str]:
    config = Config.from_file(args.config) if args.config else Config()
    state_dir = Path(args.state_dir) if args.state_dir else config.resolved_state_dir()
    return config, state_dir, args.instance or config.instance_name


def describe(app: dict[str, Any]) -> str:
    """One line per running app, for lists and prompts."""
    started = time.strftime("%H:%M:%S", time.localtime(time.time() - app["uptime"]))
    pools = ", ".join(f"{p['name']}×{p['size']}" for p in app["pools"])
    return (f"run {app['run_id']}  instance {app['instance']!r}  pid {app['pid']}  "
            f"started {started}  pools: {pools}")


def pick(args: argparse.Namespace, *, stdin: TextIO | None = None, out: TextIO | None = None,
         none_ok: bool = False) -> list[dict[str, Any]]:
    """The snapshots of the app(s) the command is about (see the module docstring); ``[]``
    when none runs and ``none_ok``."""
    from snakepit.admin import running_apps

    config, state_dir, _ = load(args)
    apps = running_apps(state_dir, args.instance)
    which = f"instance {args.instance!r} " if args.instance else ""
    if getattr(args, "run", None):
        apps = [a for a in apps if str(a["run_id"]).startswith(args.run)]
        which += f"run {args.run!r} "
    if not apps and none_ok:
        return []
    if not apps:
        raise SnakepitError(f"no running snakepit app {which}under {state_dir} (no admin socket "
                            f"answers in {state_dir / 'admin'})")
    if len(apps) == 1 or getattr(args, "all", False):
        return apps
    stdin, out = stdin or sys.stdin, out or sys.stderr
    listing = "\n".join(f"  [{i}] {describe(a)}" for i, a in enumerate(apps, 1))
    if not (stdin.isatty() and out.isatty()):
        raise SnakepitError(f"{len(apps)} snakepit apps are running under {state_dir}:\n"
                            f"{listing}\npick one with --run RUN_ID (or --instance NAME), or "
                            f"pass --all")
    print(f"{len(apps)} snakepit apps are running under {state_dir}:\n{listing}", file=out)
    while True:
        print(f"which one? [1-{len(apps)}, a = all] ", end="", file=out, flush=True)
        answer = stdin.readline().strip().lower()
        if not answer:
            raise KeyboardInterrupt
        if answer in ("a", "all"):
            return apps
        if answer.isdigit() and 1 <= int(answer) <= len(apps):
            return [apps[int(answer) - 1]]


def snapshot(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fresh snapshots of the picked app(s) (the first pick is remembered in ``args``)."""
    from snakepit.admin import query

    if getattr(args, "_sockets", None) is None:
        apps = pick(args)
        args._sockets = [a["socket"] for a in apps]
        return apps
    fresh = []
    for path in args._sockets:
        try:
            fresh.append(query(Path(path)))
        except OSError as exc:
            raise SnakepitError(f"the app at {path} stopped answering: {exc}") from None
    return fresh
