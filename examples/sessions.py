"""Sessions and affinity: a session's calls go to the worker that holds its state."""

import trio

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=3,
                                                    affinity="strict_queue")])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        for session in ("alice", "bob"):
            for _ in range(3):
                count = await app.execute("session_counter", session_id=session)
                pid = (await app.execute("get_stats", session_id=session))["pid"]
                print(f"session {session}: counter={count} on worker pid {pid}")


if __name__ == "__main__":
    trio.run(main)
