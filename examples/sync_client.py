"""The synchronous Client, from plain Python (no trio in sight)."""

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=2)])

if __name__ == "__main__":
    with snakepit.Client(CONFIG) as sp:
        print("add:", sp.execute("add", {"a": 40, "b": 2}))
        for chunk in sp.stream("stream_progress", {"steps": 3, "delay_ms": 10}):
            print("chunk:", chunk.chunk_id, chunk.data, chunk.is_final)
        print("stats:", sp.stats())
    print("run_as_script:", snakepit.run_as_script(lambda c: c.execute("ping")["status"],
                                                   CONFIG))
