"""sqlite sessions survive a host killed with -9: every acknowledged write is there."""

import subprocess
import sys

import snakepit

HOST = """
import sys, trio, snakepit
cfg = snakepit.Config(state_dir=sys.argv[1], sessions=snakepit.SessionConfig(store="sqlite"),
                      pools=[snakepit.PoolConfig(name="default", size=1)])
async def main():
    async with snakepit.start(cfg) as app:
        await app.sessions.create("s", metadata={"owner": "host-1"})
        await app.sessions.register_variable("s", "n", "integer", 0)
        i = 0
        while True:
            await app.sessions.store_program("s", f"p{i}", {"i": i})
            await app.sessions.update_variable("s", "n", i)
            print(i, flush=True)        # acknowledged: both writes have returned
            i += 1
trio.run(main)
"""


async def test_acknowledged_writes_survive_kill_9(tmp_path):
    state = tmp_path / "state"
    host = subprocess.Popen([sys.executable, "-c", HOST, str(state)], stdout=subprocess.PIPE)
    try:
        acked = -1
        while acked < 30:
            acked = int(host.stdout.readline())
        host.kill()
        for line in host.stdout.read().split():   # acks that were already in the pipe
            acked = int(line)
        host.wait()
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        host.stdout.close()
    cfg = snakepit.Config(state_dir=str(state), sessions=snakepit.SessionConfig(store="sqlite"),
                          pools=[snakepit.PoolConfig(name="default", size=1)])
    async with snakepit.start(cfg) as app:
        assert (await app.sessions.get("s"))["metadata"] == {"owner": "host-1"}
        for i in range(acked + 1):
            assert await app.sessions.get_program("s", f"p{i}") == {"i": i}
        assert await app.sessions.get_variable("s", "n") >= acked
