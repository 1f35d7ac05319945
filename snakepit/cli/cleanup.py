"""``snakepit cleanup``: sweep orphaned workers of dead runs now (the start-up sweep's rules).

Only runs whose host is gone are swept; the running apps it leaves alone are listed.
"""

from __future__ import annotations

import argparse
from typing import Any

from snakepit.cli.common import add_config_flags, load


def register(sub: Any) -> None:
    p = sub.add_parser("cleanup", help="kill orphaned workers of dead runs, prune the registry",
                       description="Kill the leftover workers of dead runs (a host killed "
                                   "with -9) of the instance, or of every instance with "
                                   "--all. Running apps are never touched.")
    add_config_flags(p)
    p.add_argument("--all", action="store_true", help="dead runs of every instance name")
    p.add_argument("--dry-run", action="store_true", help="only say what would be done")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from snakepit.pool.process_registry import ProcessRegistry

    _, state_dir, instance = load(args)
    registry = ProcessRegistry.open(state_dir, instance_name=instance, register_run=False)
    try:
        report = registry.sweep(dry_run=args.dry_run, all_instances=args.all)
        live = registry.live_runs(all_instances=args.all)
    finally:
        registry.close()
    verb = "would kill" if args.dry_run else "killed"
    for entry in report.killed:
        print(f"{verb} {entry['worker_id']} (pid {entry['pid']}) of dead run {entry['run_id']}")
    for entry in report.skipped:
        print(f"left alone pid {entry['pid']}: it now belongs to another process")
    for run_ in live:
        print(f"left alone running app: run {run_['run_id']} instance {run_['instance']!r} "
              f"pid {run_['pid']}")
    scope = "every instance" if args.all else f"instance {instance!r}"
    print(f"{'would prune' if args.dry_run else 'pruned'} {report.pruned} record(s) of "
          f"{len(report.dead_runs)} dead run(s) of {scope}; {len(live)} running app(s)")
    return 0
