"""What several commands share: loading --config, finding a running instance."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from snakepit.config import Config
from snakepit.errors import SnakepitError


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="a snakepit.toml file")
    p.add_argument("--instance", default=None, help="instance name (default: the config's)")
    p.add_argument("--state-dir", default=None, help="state directory (default: the config's)")


def load(args: argparse.Namespace) -> tuple[Config, Path, str]:
    config = Config.from_file(args.config) if args.config else Config()
    state_dir = Path(args.state_dir) if args.state_dir else config.resolved_state_dir()
    return config, state_dir, args.instance or config.instance_name


def snapshot(args: argparse.Namespace) -> dict[str, Any]:
    from snakepit.admin import query, socket_path

    _, state_dir, instance = load(args)
    path = socket_path(state_dir, instance)
    if not path.exists():
        raise SnakepitError(f"no running snakepit instance {instance!r} under {state_dir} "
                            f"(no admin socket at {path})")
    try:
        return query(path)
    except OSError as exc:
        raise SnakepitError(f"instance {instance!r} does not answer at {path}: {exc}") from None
