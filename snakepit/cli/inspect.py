"""``snakepit inspect`` / ``snakepit top``: what a running application is doing."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from snakepit.cli.common import add_pick_flags, snapshot


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show the pools, workers and sessions of a running app",
                       description="Show a running app. With several running: --run picks "
                                   "one, --all shows every one; otherwise a terminal asks "
                                   "which, and without a terminal the list is printed and the "
                                   "command fails.")
    add_pick_flags(p)
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="json: one snapshot object (a list of them with --all)")
    p.add_argument("--detailed", action="store_true", help="one row per worker")
    p.add_argument("--recommendations", action="store_true", help="advice from the numbers")
    p.set_defaults(func=run)
    t = sub.add_parser("top", help="inspect as a live-updating table")
    add_pick_flags(t)
    t.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between refreshes (default: 1.0)")
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


# Short headers: the pool table fits 80 columns with a pool name of up to ~12 characters;
# longer names wrap rather than being cut, as no number or name ever is.
POOL_COLUMNS = {"workers": "workers", "available": "avail", "busy": "busy", "queued": "queue",
                "requests": "requests", "errors": "errors", "queue_timeouts": "q-tmo",
                "restarts": "restart", "recycled": "recycl"}


NODE_ID_CHARS = 8


def render(snap: dict[str, Any], detailed: bool, advice: bool) -> Group:
    parts: list[Any] = []
    head = Table(title=f"snakepit instance {snap['instance']!r} (pid {snap['pid']}, "
                       f"run {snap['run_id']}, up {snap['uptime']:.0f} s)",
                 box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    head.add_column("pool", overflow="fold")
    for header in POOL_COLUMNS.values():
        head.add_column(header, justify="right", no_wrap=True)
    for pool in snap["pools"]:
        s = pool.get("stats") or {}
        head.add_row(pool["name"], *(str(s.get(c, "-")) for c in POOL_COLUMNS))
    parts.append(head)
    if detailed:
        workers = Table(title="workers", box=box.SIMPLE_HEAD, collapse_padding=True,
                        pad_edge=False)
        workers.add_column("id", overflow="fold")
        # The Ray node a worker runs on (a RayPlacement), by the first NODE_ID_CHARS of its
        # id (the JSON format has it whole); the column shows only when a worker is remote.
        remote = any(w.get("node_id") for p in snap["pools"] for w in p.get("workers", []))
        for c in ("pid", *(("node",) if remote else ()), "state", "in_flight", "requests",
                  "rss MB", "uptime s"):
            workers.add_column(c, justify="left" if c in ("state", "node") else "right",
                               no_wrap=True)
        for pool in snap["pools"]:
            for w in pool.get("workers", []):
                node = ((w.get("node_id") or "-")[:NODE_ID_CHARS],) if remote else ()
                workers.add_row(w["id"], str(w["pid"]), *node, w["state"], str(w["in_flight"]),
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
    snaps = snapshot(args)
    if args.format == "json":
        for snap in snaps:
            if args.recommendations:
                snap["recommendations"] = recommendations(snap)
        print(json.dumps(snaps if args.all else snaps[0], indent=2, default=str))
        return 0
    console = Console()
    for snap in snaps:
        console.print(render(snap, args.detailed, args.recommendations))
    return 0


def top(args: argparse.Namespace) -> int:
    from rich.live import Live

    def frame() -> Group:
        return Group(*(render(s, True, False) for s in snapshot(args)))

    count = 0
    with Live(frame(), refresh_per_second=4) as live:
        while args.iterations == 0 or count < args.iterations:
            time.sleep(args.interval)   # the refresh period itself, not a wait for a condition
            live.update(frame())
            count += 1
    return 0
