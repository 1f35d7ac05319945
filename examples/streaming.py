"""Streaming with a progress bar."""

import trio
from rich.progress import Progress

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=1)])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        with Progress() as progress:
            task = progress.add_task("working", total=20)
            async with app.stream("stream_progress", {"steps": 20, "delay_ms": 20}) as chunks:
                async for chunk in chunks:
                    progress.update(task, completed=chunk.data["step"])
        # Leaving a stream early stops the producer in the worker:
        async with app.stream("stream_data", {"count": 10**6, "delay": 0.001}) as chunks:
            async for chunk in chunks:
                print("first item:", chunk.data)
                break
        print("worker free again:", await app.execute("ping"))


if __name__ == "__main__":
    trio.run(main)
