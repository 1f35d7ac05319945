"""Recycling workers by request count and by age, without failing a request."""

import trio

import snakepit

CONFIG = snakepit.Config(pools=[
    snakepit.PoolConfig(name="by_requests", size=1, worker_max_requests=5),
    snakepit.PoolConfig(name="by_ttl", size=1, worker_ttl=0.5),
])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        pids = []
        for _ in range(12):   # the replacement starts first, so give it a moment to join
            pids.append((await app.execute("get_stats", pool="by_requests"))["pid"])
            await trio.sleep(0.1)
        print("by_requests: worker pids over 12 calls:", pids)
        seen = set()
        with trio.move_on_after(2.0):
            while True:
                seen.add((await app.execute("get_stats", pool="by_ttl"))["pid"])
                await trio.sleep(0.05)
        print(f"by_ttl: {len(seen)} different workers in 2 s")
        for pool in app.pools:
            print(pool, "recycled:", app.stats(pool)["recycled"], "errors:",
                  app.stats(pool)["errors"])


if __name__ == "__main__":
    trio.run(main)
