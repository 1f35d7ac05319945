"""Concurrent load: 40 calls spread over a pool of 4 workers."""

import time

import trio

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=4)])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        results: list[int] = []

        async def one(i: int) -> None:
            await app.execute("sleep", {"seconds": 0.1})
            results.append(i)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(one, i)
        print(f"40 × sleep(0.1) on 4 workers: {time.perf_counter() - t0:.2f} s "
              f"(ideal 1.0 s); {len(results)} done")
        print("stats:", app.stats())


if __name__ == "__main__":
    trio.run(main)
