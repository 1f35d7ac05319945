"""Two pools with different profiles: single-threaded processes and a threaded worker."""

import time
from functools import partial

import trio

import snakepit

SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
CONFIG = snakepit.Config(pools=[
    snakepit.PoolConfig(name="cpu", size=2, adapter=SHOWCASE),
    snakepit.PoolConfig(name="io", size=1, adapter=SHOWCASE, profile="thread",
                        threads_per_worker=8),
])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(partial(app.execute, "sleep", {"seconds": 0.2}, pool="io"))
            for _ in range(2):
                nursery.start_soon(partial(app.execute, "cpu_burn", {"ms": 200}, pool="cpu"))
        print(f"8 sleeps on one threaded worker + 2 CPU burns: {time.perf_counter()-t0:.2f} s")
        for pool in app.pools:
            print(pool, [(w["id"], w["capacity"]) for w in app.workers(pool)])


if __name__ == "__main__":
    trio.run(main)
