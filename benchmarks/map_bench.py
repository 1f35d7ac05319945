"""Many calls of one tool: snakepit's ``app.map`` against ``multiprocessing.Pool.imap`` (at its
best chunk size) and ``ProcessPoolExecutor.map(chunksize=1)``, 2 workers, items/s.

    python benchmarks/map_bench.py [--items 100000]

Every peer computes ``a + b`` for ``items`` argument pairs and the caller consumes the results in
order. Used by ``run_all.py`` (section ``map``); run alone it prints one line per peer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import pool_config  # noqa: E402

import snakepit  # noqa: E402

WORKERS = 2
CHUNKSIZES = (1, 100, 1000)


def add(pair: tuple[int, int]) -> int:
    return pair[0] + pair[1]


def snakepit_map(items: int, pipeline: int = 1) -> float:
    async def main() -> float:
        async with snakepit.start(pool_config(WORKERS, "pipe", pipeline=pipeline)) as app:
            await app.execute("add", {"a": 1, "b": 2})
            t = time.perf_counter()
            async with app.map("add", ({"a": i, "b": 1} for i in range(items))) as results:
                async for _ in results:
                    pass
            return items / (time.perf_counter() - t)
    return trio.run(main)


def mp_imap(items: int) -> tuple[float, int]:
    """Items/s of ``Pool.imap`` at its best chunk size (of CHUNKSIZES), and that size."""
    best: tuple[float, int] = (0.0, 0)
    with multiprocessing.Pool(WORKERS) as pool:
        pool.apply(add, ((1, 2),))
        for chunksize in CHUNKSIZES:
            n = min(items, 20_000) if chunksize == 1 else items
            t = time.perf_counter()
            for _ in pool.imap(add, ((i, 1) for i in range(n)), chunksize=chunksize):
                pass
            best = max(best, (n / (time.perf_counter() - t), chunksize))
    return best


def ppe_map(items: int) -> float:
    """Items/s of ``ProcessPoolExecutor.map(chunksize=1)`` (on at most 20 000 items)."""
    n = min(items, 20_000)
    with concurrent.futures.ProcessPoolExecutor(WORKERS) as ex:
        ex.submit(add, (1, 2)).result()
        t = time.perf_counter()
        for _ in ex.map(add, ((i, 1) for i in range(n)), chunksize=1):
            pass
        return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    rows: dict[str, Any] = {"snakepit/pipe app.map": snakepit_map(args.items)}
    rate, chunksize = mp_imap(args.items)
    rows[f"multiprocessing.Pool.imap (chunksize={chunksize})"] = rate
    rows["ProcessPoolExecutor.map (chunksize=1)"] = ppe_map(args.items)
    for name, rate in rows.items():
        print(f"{name:45} {rate:10.0f} items/s")


if __name__ == "__main__":
    main()
