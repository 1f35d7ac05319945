"""``snakepit setup node``: install the Node worker's dependencies ahead of time."""

from __future__ import annotations

import argparse
from typing import Any

from snakepit.config import Config


def register(sub: Any) -> None:
    p = sub.add_parser("setup", help="prepare a worker runtime ahead of time")
    p.add_argument("runtime", choices=["node"], help="the runtime to prepare")
    p.add_argument("--config", default=None, help="snakepit.toml (for state_dir)")
    p.add_argument("--state-dir", default=None, help="where to install (default: state dir)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from snakepit.adapters import install_node_deps

    config = Config.from_file(args.config) if args.config else Config()
    state_dir = args.state_dir or str(config.resolved_state_dir())
    modules = install_node_deps(state_dir)
    print(f"Node worker dependencies installed in {modules}")
    return 0
