"""Sessions: affinity to the worker holding a session's state, and the session store
(metadata, programs, typed variables)."""

import trio

import snakepit

CONFIG = snakepit.Config(pools=[snakepit.PoolConfig(name="default", size=3,
                                                    affinity="strict_queue")])


async def main() -> None:
    async with snakepit.start(CONFIG) as app:
        for session in ("alice", "bob"):
            for _ in range(3):       # created on first use; always the same worker
                count = await app.execute("session_counter", session_id=session)
                pid = (await app.execute("get_stats", session_id=session))["pid"]
                print(f"session {session}: counter={count} on worker pid {pid}")

        store = app.sessions
        await store.create("research", ttl=600, metadata={"owner": "ann"})
        await store.update("research", lambda meta: {**meta, "topic": "eels"})
        await store.store_program("research", "pipeline", {"steps": ["fetch", "embed"]})
        await store.register_variable("research", "temperature", "float", 0.7,
                                      {"min": 0.0, "max": 2.0})
        await store.update_variable("research", "temperature", 1.1)
        try:
            await store.update_variable("research", "temperature", 9.0)
        except snakepit.InvalidVariable as exc:
            print("rejected:", exc.message, "| rule:", exc.details["rule"])
        print("metadata:", (await store.get("research"))["metadata"])
        print("variables:", await store.list_variables("research"))
        print("temperature:", await store.get_variable("research", "temperature"))
        print("sessions:", await store.list(), "stats:", store.stats())
        await store.delete("alice")  # the worker that served alice drops its state
        print("alice again:", await app.execute("session_counter", session_id="alice"))


if __name__ == "__main__":
    trio.run(main)
