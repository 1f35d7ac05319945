"""CPU time of a large numpy array round trip over the pipe transport, host and worker.

    python benchmarks/blob_cpu.py [--calls 20] [--sizes 8,64] [--json out.json]

``echo({"a": array})`` of a float64 array of each size (MB) on one pipe worker, after a
warm-up: process CPU time (psutil: user + system, all threads) of the caller and of the worker
per call, and the wall time. The caller touches the array it gets back (a sum), as a user
would; the payload crosses once each way, through ``/dev/shm`` segments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import pool_config  # noqa: E402

import snakepit  # noqa: E402


def cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def row(app: snakepit.Application, mb: int, calls: int) -> dict[str, float]:
    array = np.random.default_rng(1).random(mb * (1 << 20) // 8)
    for _ in range(3):   # warm-up
        await app.execute("echo", {"a": array})
    pid, me = app.workers()[0]["pid"], psutil.Process().pid
    h0, w0, t0 = cpu(me), cpu(pid), time.perf_counter()
    for _ in range(calls):
        out = await app.execute("echo", {"a": array})
        out["a"].sum()
    h1, w1, t1 = cpu(me), cpu(pid), time.perf_counter()
    return {"mb": mb, "calls": calls, "host_ms": (h1 - h0) / calls * 1e3,
            "worker_ms": (w1 - w0) / calls * 1e3, "wall_ms": (t1 - t0) / calls * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--sizes", default="8,64")
    parser.add_argument("--json")
    opts = parser.parse_args()

    async def run() -> list[dict[str, float]]:
        config = pool_config(1, "pipe", adapter="snakepit_bridge.adapters.showcase:ShowcaseAdapter")
        async with snakepit.start(config) as app:
            return [await row(app, int(mb), opts.calls) for mb in opts.sizes.split(",")]
    rows = trio.run(run)
    for r in rows:
        print(f"{r['mb']:>4} MB  caller {r['host_ms']:7.2f} ms  worker {r['worker_ms']:7.2f} ms"
              f"  wall {r['wall_ms']:7.2f} ms  ({r['calls']} calls)")
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
