"""Start, execute, stream, errors, timeouts, cancellation — real workers, real protocol."""

import os
import signal
import time

import psutil
import pytest
import trio

import snakepit
from snakepit import errors




async def test_start_ready_stats_and_shutdown_reaps(make_config):
    async with snakepit.start(make_config(size=2)) as app:
        workers = app.workers()
        assert [w["id"] for w in workers] == ["default-1", "default-2"]
        pids = [w["pid"] for w in workers]
        assert all(psutil.pid_exists(p) for p in pids)
        assert await app.execute("add", {"a": 2, "b": 3}) == 5
        assert (await app.execute("ping"))["status"] == "pong"
        stats = app.stats()
        for key in ("workers", "available", "busy", "requests", "queued", "errors",
                    "queue_timeouts", "pool_saturated", "restarts", "recycled"):
            assert key in stats
        assert stats["workers"] == 2 and stats["available"] == 2 and stats["requests"] == 2
        for w in app.workers():
            assert w["state"] == "ready" and w["capacity"] == 1 and w["rss"] > 0
    for pid in pids:   # returns only when every worker process has been reaped
        assert not psutil.pid_exists(pid)


async def test_module_level_execute(make_config):
    async with snakepit.start(make_config(size=1)):
        assert await snakepit.execute("add", {"a": 1, "b": 1}) == 2


async def test_stream_order_and_unary_as_stream(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        seen = []
        async with app.stream("stream_progress", {"steps": 5, "delay_ms": 1}) as chunks:
            async for chunk in chunks:
                seen.append(chunk)
        # exactly what the tool yielded: the protocol's empty end-of-stream chunk is not a chunk
        assert [c.data["step"] for c in seen] == [1, 2, 3, 4, 5]
        assert [c.chunk_id for c in seen] == [1, 2, 3, 4, 5]
        assert not any(c.is_final for c in seen)
        async with app.stream("add", {"a": 1, "b": 2}) as chunks:
            got = [c async for c in chunks]
        assert len(got) == 1 and got[0].is_final and got[0].data == 3
        with pytest.raises(errors.InvalidArgumentsError, match="stream"):
            await app.execute("stream_progress", {"steps": 2})


@pytest.mark.parametrize("delay", [0.001, 0.0])
async def test_stream_early_exit_frees_worker(make_config, delay):
    # delay 0: the cancel lands as a step completes (asyncio.wait_for on 3.11 swallowed it)
    async with snakepit.start(make_config(size=1)) as app:
        for _ in range(3):
            with trio.fail_after(10):
                async with app.stream("stream_data", {"count": 100000,
                                                      "delay": delay}) as chunks:
                    async for n, chunk in _enumerate(chunks):
                        if n == 4:
                            break
                assert await app.execute("add", {"a": 1, "b": 1}) == 2
        assert app.stats()["available"] == 1


async def test_stream_delivers_yielded_nones_and_a_final_chunk_the_tool_marked(make_config):
    async with snakepit.start(make_config(size=1, adapter="pool_adapters:StreamShapes")) as app:
        async with app.stream("yields", {"items": [1, None, 2]}) as chunks:
            got = [c async for c in chunks]
        assert [(c.chunk_id, c.data, c.is_final) for c in got] == [
            (1, 1, False), (2, None, False), (3, 2, False)]
        async with app.stream("marks_final", {"n": 2}) as chunks:
            got = [c async for c in chunks]
        assert [(c.data, c.is_final, c.metadata) for c in got] == [
            (0, False, {}), (1, False, {}), (None, True, {"why": "done"})]
        async with app.stream("yields", {"items": []}) as chunks:
            assert [c async for c in chunks] == []


async def _enumerate(chunks):
    n = 0
    async for chunk in chunks:
        yield n, chunk
        n += 1


async def test_error_types(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        with pytest.raises(errors.ToolError) as info:
            await app.execute("error_demo", {"error_type": "value"})
        e = info.value
        assert e.category == "tool" and e.remote_type == "ValueError"
        assert "Traceback" in (e.remote_traceback or "")
        with pytest.raises(errors.UnknownToolError) as info:
            await app.execute("no_such_tool")
        assert "ping" in info.value.details["available"]
        with pytest.raises(errors.InvalidArgumentsError):
            await app.execute("add", {"a": 1})
        with pytest.raises(errors.PoolNotFound):
            await app.execute("ping", pool="nope")
        with pytest.raises(errors.InvalidArgumentsError):
            await app.execute("ping", ["not", "a", "dict"])
        assert app.stats()["errors"] == 4  # PoolNotFound belongs to no pool
        assert await app.execute("add", {"a": 1, "b": 2}) == 3  # still serving


async def test_caller_timeout(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout) as info:
            await app.execute("sleep", {"seconds": 5}, timeout=0.3)
        assert 0.25 < time.monotonic() - t0 < 1.5
        assert info.value.details["tool"] == "sleep"
        with trio.fail_after(3):   # the worker was told to cancel and is free again
            assert await app.execute("add", {"a": 1, "b": 1}) == 2


async def test_cancelling_caller_frees_worker(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        with trio.move_on_after(0.3):
            await app.execute("sleep", {"seconds": 10})
        with trio.fail_after(3):
            assert await app.execute("add", {"a": 1, "b": 1}) == 2
        assert app.stats()["available"] == 1


async def test_queue_timeout_and_saturation_never_run(make_config):
    config = make_config(size=1, max_queue_size=2, queue_timeout=0.3)
    async with snakepit.start(config) as app:
        outcomes = []

        async def call(i):
            try:
                await app.execute("session_counter", {}, session_id=f"q{i}")
                outcomes.append(("ok", i))
            except errors.QueueTimeout:
                outcomes.append(("queue_timeout", i))
            except errors.PoolSaturated:
                outcomes.append(("saturated", i))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.execute, "sleep", {"seconds": 1.0})
            await trio.sleep(0.1)
            for i in range(5):
                nursery.start_soon(call, i)
        kinds = sorted(k for k, _ in outcomes)
        assert kinds == ["queue_timeout", "queue_timeout", "saturated", "saturated",
                         "saturated"]
        stats = app.stats()
        assert stats["queue_timeouts"] == 2 and stats["pool_saturated"] == 3
        # the timed-out requests never ran: their sessions' counters were never touched
        for _, i in outcomes:
            assert await app.execute("session_counter", {}, session_id=f"q{i}") == 1


async def test_concurrency_8_workers_20_sleeps(make_config):
    async with snakepit.start(make_config(size=8)) as app:
        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(app.execute, "sleep", {"seconds": 0.5})
        elapsed = time.monotonic() - t0
        assert elapsed < 1.9, elapsed


async def test_thread_profile_concurrency(make_config):
    config = make_config(size=1, profile="thread", threads_per_worker=4,
                         adapter="pool_adapters:ThreadedAdapter")
    async with snakepit.start(config) as app:
        assert app.workers()[0]["capacity"] == 4
        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(app.execute, "sleep", {"seconds": 0.5})
        assert time.monotonic() - t0 < 1.5


async def test_kill_9_mid_call(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        pid = app.workers()[0]["pid"]

        async def killer():
            await trio.sleep(0.3)
            os.kill(pid, signal.SIGKILL)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer)
            with trio.fail_after(5), pytest.raises(errors.WorkerCrashed):
                await app.execute("sleep", {"seconds": 10})
        with trio.fail_after(10):
            assert await app.execute("add", {"a": 1, "b": 1}) == 2
        assert app.workers()[0]["pid"] != pid
        assert app.stats()["restarts"] == 1
        assert not psutil.pid_exists(pid)
