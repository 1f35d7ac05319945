"""CPU time per call, host and worker: sequential `add` calls on one worker.

    python benchmarks/cpu_per_call.py [--calls 3000] [--json out.json]

Process CPU time (psutil: user + system, all threads) of the calling process and of the worker
process, divided by the number of calls, for snakepit over each transport and for
ProcessPoolExecutor (1 worker, `submit(...).result()`), in one run. On a shared machine CPU
time per call is steadier than a rate. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import operator
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import pool_config  # noqa: E402

import snakepit  # noqa: E402


def cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def measure(calls: int, one_call: Any, worker_pid: int) -> dict[str, float]:
    host, worker = psutil.Process().pid, worker_pid
    h0, w0, t0 = cpu(host), cpu(worker), time.perf_counter()
    one_call(calls)
    h1, w1, t1 = cpu(host), cpu(worker), time.perf_counter()
    return {"host_us": (h1 - h0) / calls * 1e6, "worker_us": (w1 - w0) / calls * 1e6,
            "wall_us": (t1 - t0) / calls * 1e6, "calls": calls}


def snakepit_row(transport: str, calls: int) -> dict[str, float]:
    async def main() -> dict[str, float]:
        async with snakepit.start(pool_config(1, transport)) as app:
            for _ in range(200):                       # warm-up
                await app.execute("add", {"a": 1, "b": 2})
            pid = app.workers()[0]["pid"]
            h0, w0, t0 = cpu(psutil.Process().pid), cpu(pid), time.perf_counter()
            for i in range(calls):
                await app.execute("add", {"a": i, "b": 1})
            h1, w1, t1 = cpu(psutil.Process().pid), cpu(pid), time.perf_counter()
            return {"host_us": (h1 - h0) / calls * 1e6, "worker_us": (w1 - w0) / calls * 1e6,
                    "wall_us": (t1 - t0) / calls * 1e6, "calls": calls}
    return trio.run(main)


def ppe_row(calls: int) -> dict[str, float]:
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        for _ in range(200):
            ex.submit(operator.add, 1, 2).result()
        pid = next(iter(ex._processes))   # noqa: SLF001 (the stdlib keeps it private)

        def run(n: int) -> None:
            for i in range(n):
                ex.submit(operator.add, i, 1).result()
        return measure(calls, run, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--json", default="cpu_per_call.json")
    args = parser.parse_args()
    rows = {"snakepit/pipe": snakepit_row("pipe", args.calls),
            "snakepit/grpc": snakepit_row("grpc", args.calls),
            "ProcessPoolExecutor": ppe_row(args.calls)}
    print(f"{'peer':22} {'host µs/call':>13} {'worker µs/call':>15} {'wall µs/call':>13}")
    for name, r in rows.items():
        print(f"{name:22} {r['host_us']:13.1f} {r['worker_us']:15.1f} {r['wall_us']:13.1f}")
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
