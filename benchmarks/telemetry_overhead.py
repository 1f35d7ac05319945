"""Telemetry overhead: ping throughput with no handler vs a handler on every request event.

Paired runs in one process, alternating, on the same pool; prints a table and writes
benchmarks/results/telemetry_overhead.json.

    python benchmarks/telemetry_overhead.py [--workers 2] [--callers 16] [--seconds 2] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import trio

import snakepit

EVENTS = [("snakepit", "request", "execute", e) for e in ("start", "stop", "exception")]


async def throughput(app, callers: int, seconds: float) -> float:
    done = 0
    deadline = trio.current_time() + seconds

    async def caller() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            await app.execute("ping")
            done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
    return done / seconds


async def main(args: argparse.Namespace) -> dict:
    cfg = snakepit.Config(state_dir=args.state_dir, log_level="warning", pools=[
        snakepit.PoolConfig(name="default", size=args.workers)])
    results: dict[str, list[float]] = {"no_handler": [], "handler": []}
    async with snakepit.start(cfg) as app:
        await throughput(app, args.callers, 0.5)   # warm-up
        for _ in range(args.reps):
            results["no_handler"].append(await throughput(app, args.callers, args.seconds))
            seen = [0]
            snakepit.telemetry.attach_many("bench", EVENTS,
                                           lambda e, m, md, c: seen.__setitem__(0, seen[0] + 1))
            try:
                results["handler"].append(await throughput(app, args.callers, args.seconds))
            finally:
                snakepit.telemetry.detach("bench")
    return results


def report(results: dict, args: argparse.Namespace) -> dict:
    rows = {}
    for name, values in results.items():
        rows[name] = {"median": statistics.median(values), "min": min(values),
                      "max": max(values), "runs": values}
    base = rows["no_handler"]["median"]
    print(f"ping throughput, {args.workers} workers, {args.callers} callers, "
          f"{args.reps} x {args.seconds} s (calls/s)")
    print(f"{'variant':<12} {'median':>10} {'min':>10} {'max':>10} {'vs none':>8}")
    for name, row in rows.items():
        print(f"{name:<12} {row['median']:>10.0f} {row['min']:>10.0f} {row['max']:>10.0f} "
              f"{row['median'] / base:>8.3f}")
    return {"benchmark": "telemetry_overhead", "workers": args.workers, "callers": args.callers,
            "seconds": args.seconds, "python": sys.version.split()[0], "results": rows}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--callers", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--state-dir", default="/tmp/snakepit-bench")
    args = p.parse_args()
    data = report(trio.run(main, args), args)
    out = Path(__file__).parent / "results" / "telemetry_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    print(f"wrote {out}")
