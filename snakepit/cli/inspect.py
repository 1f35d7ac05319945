"""``snakepit inspect`` / ``snakepit top``: what a running application is doing."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from snakepit.cli.common import add_config_flags, snapshot


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show the pools, workers and sessions of a running app")
    add_config_flags(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--detailed", action="store_true", help="one row per worker")
    p.add_argument("--recommendations", action="store_true", help="advice from the numbers")
    p.set_defaults(func=run)
    t = sub.add_parser("top", help="inspect as a live-updating table")
    add_config_flags(t)
    t.add_argument("--interval", type=float, default=1.0)
    t.add_argument("--iterations", type=int, default=0, help="stop after N refreshes (0: never)")
    t.set_defaults(func=top, detailed=True, recommendations=False)


def recommendations(snap: dict[str, Any]) -> list[str]:
    advice = []
    for pool in snap["pools"]:
        name, stats = pool["name"], pool.get("stats")
        if not stats:
            advice.append(f"pool {name!r} is not running: check the application log for its "
                          f"start errors")
            continue
        cfg = snap["config"][name]
        if stats["queue_timeouts"] and stats["available"] == 0:
            advice.append(f"pool {name!r}: {stats['queue_timeouts']} queue timeouts with all "
                          f"workers busy — grow the pool (size {pool['size']}) or raise "
                          f"queue_timeout ({cfg['queue_timeout']} s)")
        if stats["pool_saturated"]:
            advice.append(f"pool {name!r}: {stats['pool_saturated']} requests refused with the "
                          f"queue full — raise max_queue_size ({cfg['max_queue_size']}) or size")
        if stats["restarts"] > pool["size"]:
            advice.append(f"pool {name!r}: {stats['restarts']} worker restarts — look at the "
                          f"worker stderr in the log (crashes, heartbeat loss)")
        if stats.get("degraded"):
            advice.append(f"pool {name!r}: {stats['degraded']} slot(s) keep failing to start")
        rss = [w["rss"] for w in pool.get("workers", []) if w.get("rss")]
        if rss and cfg["worker_max_memory_mb"] is None and max(rss) > 1024 ** 3:
            advice.append(f"pool {name!r}: a worker uses {max(rss) / 2**20:.0f} MB — set "
                          f"worker_max_memory_mb to recycle workers that grow")
        if stats["errors"] and stats["requests"] and stats["errors"] / stats["requests"] > 0.2:
            advice.append(f"pool {name!r}: {stats['errors']} of {stats['requests']} calls "
                          f"failed")
    if snap["processes"].get("stale"):
        advice.append(f"{snap['processes']['stale']} stale process records: run "
                      f"`snakepit cleanup`")
    return advice or ["nothing to recommend: the numbers look healthy"]


def render(snap: dict[str, Any], detailed: bool, advice: bool) -> Group:
    parts: list[Any] = []
    head = Table(title=f"snakepit instance {snap['instance']!r} (pid {snap['pid']}, "
                       f"up {snap['uptime']:.0f} s)")
    cols = ["pool", "workers", "available", "busy", "queued", "requests", "errors",
            "queue_timeouts", "restarts", "recycled"]
    for c in cols:
        head.add_column(c, justify="left" if c == "pool" else "right")
    for pool in snap["pools"]:
        s = pool.get("stats") or {}
        head.add_row(pool["name"], *(str(s.get(c, "-")) for c in cols[1:]))
    parts.append(head)
    if detailed:
        workers = Table(title="workers")
        for c in ("id", "pid", "state", "in_flight", "requests", "rss MB", "uptime s"):
            workers.add_column(c)
        for pool in snap["pools"]:
            for w in pool.get("workers", []):
                workers.add_row(w["id"], str(w["pid"]), w["state"], str(w["in_flight"]),
                                str(w["requests"]),
                                f"{w['rss'] / 2**20:.1f}" if w.get("rss") else "-",
                                f"{w['uptime']:.0f}" if w.get("uptime") else "-")
        parts.append(workers)
    s, p = snap["sessions"], snap["processes"]
    parts.append(f"sessions: {s.get('sessions', 0)} (store {s.get('store', '-')}, expired "
                 f"{s.get('expired', 0)})   processes: tracked {p.get('tracked', 0)}, live "
                 f"{p.get('live', 0)}, stale {p.get('stale', 0)}")
    if advice:
        parts.extend(f"• {line}" for line in recommendations(snap))
    return Group(*parts)


def run(args: argparse.Namespace) -> int:
    snap = snapshot(args)
    if args.format == "json":
        if args.recommendations:
            snap["recommendations"] = recommendations(snap)
        print(json.dumps(snap, indent=2, default=str))
        return 0
    Console().print(render(snap, args.detailed, args.recommendations))
    return 0


def top(args: argparse.Namespace) -> int:
    from rich.live import Live

    count = 0
    with Live(render(snapshot(args), True, False), refresh_per_second=4) as live:
        while args.iterations == 0 or count < args.iterations:
            time.sleep(args.interval)
            live.update(render(snapshot(args), True, False))
            count += 1
    return 0
