"""A pool of Node.js workers running the packaged Node showcase (needs node + npm once)."""

from pathlib import Path

import trio

import snakepit
import snakepit_bridge
from snakepit.adapters import NodeAdapter

TOOLS = Path(snakepit_bridge.__file__).parent / "node" / "showcase.js"   # or your tools.js
CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(
    name="node", size=2, adapter=NodeAdapter(script=str(TOOLS), capacity=4))])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        print("add:", await app.execute("add", {"a": 2, "b": 3}))
        print("text:", await app.execute("process_text", {"text": "node", "operation": "upper"}))
        async with app.stream("stream_progress", {"steps": 3, "delay_ms": 10}) as chunks:
            async for chunk in chunks:
                print("chunk:", chunk.chunk_id, chunk.data)
        app.tools.register("host_echo", lambda **kw: kw)
        print("host call:", await app.execute("call_host_demo", {"args": {"from": "node"}}))
        print("workers:", [(w["id"], w["pid"], w["capacity"]) for w in app.workers()])


if __name__ == "__main__":
    trio.run(main)
