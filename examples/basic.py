"""Basic calls: start a pool, run a few tools, handle an error."""

import trio

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=2)])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        print("add:", await app.execute("add", {"a": 2, "b": 3}))
        print("upper:", await app.execute("process_text", {"text": "hi", "operation": "upper"}))
        try:
            await app.execute("error_demo", {"error_type": "key"})
        except snakepit.ToolError as exc:
            print("error:", exc.remote_type, exc.message)
        print("stats:", app.stats())


if __name__ == "__main__":
    trio.run(main)
