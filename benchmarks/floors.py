"""Floors: what the machine and the `map` API cost before snakepit does anything.

    python benchmarks/floors.py [--json floors.json]

Two measurements, each beside the figure it bounds, in one run:

1. **A bare echo's CPU per round trip, by the caller's time between calls.** Two processes, a
   socketpair, an 80-byte message written and read back (`os.read`/`os.write`, no Python work
   beyond the loop). The caller spins for 0, 100 or 200 µs between round trips, as a real
   caller does its own work. Process CPU time (user + system, psutil as in cpu_per_call.py)
   per round trip of each side. On a VM a thread that sleeps longer costs more to wake (the
   idle vCPU halts, and the wake-up goes through the hypervisor), so this is the floor a
   worker's CPU per call meets at a given call rate, whatever its code.
2. **The `map` API's own work per item**, with no pool, no frames and no I/O: on the host, the
   argument dicts from a generator (`{"a": i, "b": 1}`), packed as JSON arrays of 256 (orjson),
   and each result decoded and delivered through `async for` in trio (an iterator that returns
   the next decoded value without a checkpoint); in the worker, the array decoded, `add(**item)`
   called for each item and the results encoded. Host and workers share the machine's cores,
   so items/s is at most `min(1e9 / host_ns, cores * 1e9 / (host_ns + worker_ns))`. Beside
   it, `multiprocessing.Pool.imap` at its best chunk size (map_bench.mp_imap), same run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import map_bench  # noqa: E402
from cpu_per_call import cpu  # noqa: E402

GAPS_US = (0, 100, 200)
ECHO_CALLS = 10_000
BATCH = 256
CORES = os.cpu_count() or 1


def echo_cpu(gap_us: float, calls: int = ECHO_CALLS) -> dict[str, float]:
    """CPU µs per round trip of each side of a bare socketpair echo (see the module doc)."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:   # the echo: read, write back, until EOF
        mine.close()
        fd = theirs.fileno()
        while data := os.read(fd, 65536):
            os.write(fd, data)
        os._exit(0)
    theirs.close()
    fd, msg, gap, now = mine.fileno(), b"x" * 80, gap_us * 1e-6, time.perf_counter
    try:
        for _ in range(1000):
            os.write(fd, msg)
            os.read(fd, 65536)
        w0, h0, t0 = cpu(pid), time.process_time(), now()
        for _ in range(calls):
            os.write(fd, msg)
            os.read(fd, 65536)
            until = now() + gap
            while now() < until:
                pass
        w1, h1, t1 = cpu(pid), time.process_time(), now()
    finally:
        mine.close()
        os.waitpid(pid, 0)
    return {"worker_us": (w1 - w0) / calls * 1e6, "caller_us": (h1 - h0) / calls * 1e6,
            "wall_us": (t1 - t0) / calls * 1e6, "gap_us": gap_us, "calls": calls}


def add(a: int, b: int) -> int:
    return a + b


class _Delivered:
    """Decoded result arrays, one value per ``__anext__`` (no checkpoint)."""

    def __init__(self, arrays: list[bytes]) -> None:
        self._arrays: Iterator[bytes] = iter(arrays)
        self._values: list[Any] = []
        self._next = 0

    def __aiter__(self) -> "_Delivered":
        return self

    async def __anext__(self) -> Any:
        if self._next < len(self._values):
            self._next += 1
            return self._values[self._next - 1]
        for array in self._arrays:
            self._values, self._next = orjson.loads(array), 1
            return self._values[0]
        raise StopAsyncIteration


def _pack(items: int) -> list[bytes]:
    args = ({"a": i, "b": 1} for i in range(items))
    batches = []
    while chunk := [arg for _, arg in zip(range(BATCH), args)]:
        batches.append(orjson.dumps(chunk))
    return batches


def _serve(batch: bytes) -> bytes:
    return orjson.dumps([add(**item) for item in orjson.loads(batch)])


def map_floor(items: int) -> dict[str, float]:
    """ns per item of the map API's own work, host and worker, and the items/s it allows."""
    _pack(min(items, 10_000))   # warm
    t = time.process_time()
    batches = _pack(items)
    pack = time.process_time() - t
    t = time.process_time()
    answers = [_serve(batch) for batch in batches]
    serve = time.process_time() - t

    async def consume() -> int:
        total = 0
        async for value in _Delivered(answers):
            total += value
        return total

    t = time.process_time()
    trio.run(consume)
    deliver = time.process_time() - t
    host, worker = (pack + deliver) / items * 1e9, serve / items * 1e9
    return {"host_ns": host, "worker_ns": worker,
            "bound_items_s": min(1e9 / host, CORES * 1e9 / (host + worker)), "items": items}


def measure(reps: int, items: int) -> dict[str, list[float]]:
    """Each floor ``reps`` times, interleaved, with imap's best rate in the same runs."""
    out: dict[str, list[float]] = {}
    for _ in range(reps):
        for gap in GAPS_US:
            row = echo_cpu(gap)
            for side in ("worker", "caller", "wall"):
                out.setdefault(f"echo_{side}_us_gap{gap}", []).append(row[f"{side}_us"])
        floor = map_floor(items)
        for key in ("host_ns", "worker_ns", "bound_items_s"):
            out.setdefault(f"map_{key}", []).append(floor[key])
        rate, chunksize = map_bench.mp_imap(items)
        out.setdefault("imap_items_s", []).append(rate)
        out.setdefault("imap_chunksize", []).append(chunksize)
    return out


def render(m: dict[str, list[float]]) -> str:
    """The floors as markdown: medians (min–max)."""
    def cell(key: str, fmt: str = ".1f") -> str:
        v = m[key]
        return f"{statistics.median(v):{fmt}} ({min(v):{fmt}}–{max(v):{fmt}})"
    lines = ["Floors (benchmarks/floors.py, same run): a bare socketpair echo between two "
             "processes, by the caller's time between calls, and the `map` API's own work "
             "per item with no pool and no I/O.", "",
             "| caller's gap between round trips | echo worker CPU, µs/call | echo caller "
             "CPU, µs/call | wall, µs/call |", "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {gap} µs | {cell(f'echo_worker_us_gap{gap}')} | "
              f"{cell(f'echo_caller_us_gap{gap}')} | {cell(f'echo_wall_us_gap{gap}')} |"
              for gap in GAPS_US]
    chunks = sorted(set(int(c) for c in m["imap_chunksize"]))
    lines += ["", "| `map` of `add` items | host ns/item | worker ns/item | items/s |",
              "| --- | ---: | ---: | ---: |",
              f"| the API's own work (dicts, orjson batches of {BATCH}, `async for`); items/s: "
              f"the bound on {CORES} cores | {cell('map_host_ns', '.0f')} | "
              f"{cell('map_worker_ns', '.0f')} | {cell('map_bound_items_s', '.0f')} |",
              f"| multiprocessing.Pool.imap at its best chunk size ({', '.join(map(str, chunks))})"
              f" |  |  | {cell('imap_items_s', '.0f')} |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default="floors.json")
    args = ap.parse_args()
    samples = measure(args.reps, args.items)
    print(render(samples))
    Path(args.json).write_text(json.dumps(samples, indent=1))


if __name__ == "__main__":
    main()
