"""One behavioural suite over every worker runtime (Python, Node.js, Ruby)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import trio

import snakepit
from snakepit import errors
from snakepit.adapters import CommandAdapter

from runtimes_support import make_adapter


def config(tmp_path, runtime, size=1, capacity=None, **kw):
    return snakepit.Config(state_dir=str(tmp_path / "state"), pools=[snakepit.PoolConfig(
        name=runtime, size=size, adapter=make_adapter(runtime, capacity), **kw)])


async def test_basics_errors_and_describe(tmp_path, runtime):
    async with snakepit.start(config(tmp_path, runtime)) as app:
        assert (await app.execute("ping"))["status"] == "pong"
        assert await app.execute("echo", {"x": [1, "a"], "y": {"z": None}}) == \
            {"x": [1, "a"], "y": {"z": None}}
        result = await app.execute("add", {"a": 2, "b": 3})
        assert result == 5 and isinstance(result, int)
        assert await app.execute("process_text", {"text": "abc", "operation": "reverse"}) == "cba"
        with pytest.raises(errors.ToolError) as info:
            await app.execute("error_demo", {"error_type": "custom"})
        assert info.value.remote_type == "ShowcaseError"
        assert "showcase" in (info.value.remote_traceback or "")
        with pytest.raises(errors.UnknownToolError):
            await app.execute("nope")
        with pytest.raises(errors.InvalidArgumentsError):
            await app.execute("add", {"a": 1})
        with pytest.raises(errors.InvalidArgumentsError, match="stream"):
            await app.execute("stream_progress", {"steps": 1})
        tools = {t["name"]: t for t in await app.describe()}
        assert tools["stream_progress"]["streaming"] and not tools["add"]["streaming"]


async def test_streaming_order_and_early_close(tmp_path, runtime):
    async with snakepit.start(config(tmp_path, runtime)) as app:
        async with app.stream("stream_progress", {"steps": 4, "delay_ms": 1}) as chunks:
            got = [c async for c in chunks]
        assert [c.data["step"] for c in got] == [1, 2, 3, 4]
        assert [c.chunk_id for c in got] == [1, 2, 3, 4] and not any(c.is_final for c in got)
        async with app.stream("stream_data", {"count": 100000, "delay": 0.001}) as chunks:
            async for chunk in chunks:
                assert chunk.data == {"index": 0, "value": 0}
                break
        with trio.fail_after(10):
            assert await app.execute("add", {"a": 1, "b": 1}) == 2


async def test_host_tools_and_sessions(tmp_path, runtime):
    async with snakepit.start(config(tmp_path, runtime)) as app:
        app.tools.register("host_echo", lambda **kw: kw)
        out = await app.execute("call_host_demo", {"tool_name": "host_echo",
                                                   "args": {"s": "text", "n": 3}})
        assert out == {"host_result": {"s": "text", "n": 3}}
        assert await app.execute("session_counter", session_id="s") == 1
        assert await app.execute("session_counter", session_id="s") == 2
        await app.sessions.delete("s")
        assert await app.execute("session_counter", session_id="s") == 1


async def test_timeout_and_cancellation(tmp_path, runtime):
    async with snakepit.start(config(tmp_path, runtime)) as app:
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout):
            await app.execute("sleep", {"seconds": 3}, timeout=0.3)
        assert time.monotonic() - t0 < 1.5
        with trio.move_on_after(0.3):
            await app.execute("sleep", {"seconds": 3})
        with trio.fail_after(10):
            assert await app.execute("add", {"a": 1, "b": 2}) == 3


async def test_kill_9_restarts(tmp_path, runtime):
    async with snakepit.start(config(tmp_path, runtime)) as app:
        pid = app.workers()[0]["pid"]
        os.kill(pid, signal.SIGKILL)
        with trio.fail_after(20):
            while True:
                try:
                    assert await app.execute("add", {"a": 1, "b": 1}) == 2
                    break
                except errors.WorkerCrashed:
                    await trio.sleep(0.05)
        assert app.workers()[0]["pid"] != pid and app.stats()["restarts"] == 1


async def test_capacity_200_concurrent_calls(tmp_path, runtime):
    async with snakepit.start(config(tmp_path, runtime, size=2, capacity=4,
                                     queue_timeout=60)) as app:
        assert [w["capacity"] for w in app.workers()] == [4, 4]
        results = []

        async def one(i):
            results.append(await app.execute("add", {"a": i, "b": 1}))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(one, i)
        assert sorted(results) == list(range(1, 201)) and app.stats()["errors"] == 0
        t0 = time.monotonic()       # capacity is real: 8 sleeps on 2 workers × 4
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(app.execute, "sleep", {"seconds": 0.5})
        assert time.monotonic() - t0 < 1.5


HOST = """
import json, sys, trio, snakepit
sys.path.insert(0, sys.argv[3])
from runtimes_support import make_adapter
cfg = snakepit.Config(state_dir=sys.argv[1], pools=[snakepit.PoolConfig(
    name="p", size=2, adapter=make_adapter(sys.argv[2]))])
async def main():
    async with snakepit.start(cfg) as app:
        print(json.dumps([w["pid"] for w in app.workers()]), flush=True)
        await trio.sleep(600)
trio.run(main)
"""


def test_host_exit_workers_exit(tmp_path, runtime):
    make_adapter(runtime)   # skips (or fails in CI) when the runtime is missing
    host = subprocess.Popen([sys.executable, "-c", HOST, str(tmp_path), runtime,
                             str(Path(__file__).parent)], stdout=subprocess.PIPE)
    try:
        pids = json.loads(host.stdout.readline())
        host.kill()
        host.wait()
        deadline = time.monotonic() + 5
        alive = pids
        while alive and time.monotonic() < deadline:
            alive = [p for p in pids if psutil.pid_exists(p)
                     and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            time.sleep(0.05)
        for p in alive:
            os.kill(p, signal.SIGKILL)
        assert not alive, f"{runtime} workers outlived a host killed with -9"
    finally:
        host.stdout.close()


async def test_mixed_application(tmp_path):
    pools = [snakepit.PoolConfig(name=rt, size=1, adapter=make_adapter(rt))
             for rt in ("python", "node", "ruby")]
    async with snakepit.start(snakepit.Config(state_dir=str(tmp_path), pools=pools)) as app:
        results = {}

        async def run(pool):
            results[pool] = [await app.execute("add", {"a": i, "b": i}, pool=pool)
                             for i in range(20)]

        async with trio.open_nursery() as nursery:
            for pool in app.pools:
                nursery.start_soon(run, pool)
        assert results == {p: [2 * i for i in range(20)] for p in ("python", "node", "ruby")}


async def test_command_adapter_with_a_raw_worker(tmp_path):
    raw = CommandAdapter(argv=[sys.executable, str(Path(__file__).parent / "raw_worker.py")])
    cfg = snakepit.Config(state_dir=str(tmp_path), pools=[snakepit.PoolConfig(
        name="raw", size=2, adapter=raw)])
    async with snakepit.start(cfg) as app:
        assert await app.execute("add", {"a": 40, "b": 2}) == 42
        async with app.stream("count", {"n": 3}) as chunks:
            assert [c.data async for c in chunks] == [{"i": 0}, {"i": 1}, {"i": 2}]
        with pytest.raises(errors.UnknownToolError):
            await app.execute("nope")
        pids = [w["pid"] for w in app.workers()]
    assert not any(psutil.pid_exists(p) for p in pids)


