"""Telemetry overhead: ping throughput with no handler vs a handler on every request event.

Paired runs in one process, alternating, on the same pool; prints a table and writes
benchmarks/results/telemetry_overhead.json.

    python benchmarks/telemetry_overhead.py [--workers 2] [--callers 16] [--seconds 2] [--reps 5]
                                            [--transport grpc|pipe]

run_all.py runs the same measurement (benchlib.telemetry_pairs) on both transports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import trio

import snakepit
from benchlib import STATE, pool_config, summary, telemetry_pairs


async def main(args: argparse.Namespace) -> dict:
    async with snakepit.start(pool_config(args.workers, args.transport, args.state_dir)) as app:
        return await telemetry_pairs(app, args.callers, args.seconds, args.reps)


def report(results: dict, args: argparse.Namespace) -> dict:
    rows = {name: summary(values) for name, values in results.items()}
    base = rows["no_handler"]["median"]
    print(f"ping throughput, snakepit/{args.transport}, {args.workers} workers, "
          f"{args.callers} callers, {args.reps} x {args.seconds} s (calls/s)")
    print(f"{'variant':<12} {'median':>10} {'min':>10} {'max':>10} {'vs none':>8}")
    for name, row in rows.items():
        print(f"{name:<12} {row['median']:>10.0f} {row['min']:>10.0f} {row['max']:>10.0f} "
              f"{row['median'] / base:>8.3f}")
    return {"benchmark": "telemetry_overhead", "transport": args.transport,
            "workers": args.workers, "callers": args.callers,
            "seconds": args.seconds, "python": sys.version.split()[0], "results": rows}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--callers", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--transport", choices=("grpc", "pipe"), default="grpc")
    p.add_argument("--state-dir", default=STATE)
    args = p.parse_args()
    data = report(trio.run(main, args), args)
    out = Path(__file__).parent / "results" / "telemetry_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    print(f"wrote {out}")
