"""A pool of Ruby workers running the packaged Ruby showcase (Debian: ruby ruby-grpc)."""

from pathlib import Path

import trio

import snakepit
import snakepit_bridge
from snakepit.adapters import RubyAdapter

TOOLS = Path(snakepit_bridge.__file__).parent / "ruby" / "showcase.rb"   # or your tools.rb
CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(
    name="ruby", size=2, adapter=RubyAdapter(script=str(TOOLS), capacity=4))])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        print("add:", await app.execute("add", {"a": 2, "b": 3}))
        print("text:", await app.execute("process_text", {"text": "ruby", "operation": "upper"}))
        async with app.stream("stream_progress", {"steps": 3, "delay_ms": 10}) as chunks:
            async for chunk in chunks:
                print("chunk:", chunk.chunk_id, chunk.data)
        app.tools.register("host_echo", lambda **kw: kw)
        print("host call:", await app.execute("call_host_demo", {"args": {"from": "ruby"}}))
        print("workers:", [(w["id"], w["pid"], w["capacity"]) for w in app.workers()])


if __name__ == "__main__":
    trio.run(main)
