"""Session affinity in its three modes, with real workers."""

import functools
import os
import signal

import pytest
import trio

import snakepit
from snakepit import errors




async def _worker_of(app, session_id):
    return (await app.execute("get_stats", {}, session_id=session_id))["pid"]


async def test_hint_prefers_then_falls_back(make_config):
    async with snakepit.start(make_config(size=2, affinity="hint")) as app:
        pid = await _worker_of(app, "s")
        for _ in range(3):
            assert await _worker_of(app, "s") == pid
        async with trio.open_nursery() as nursery:   # its worker busy → another one serves
            nursery.start_soon(functools.partial(app.execute, "sleep", {"seconds": 0.5}, session_id="s"))
            await trio.sleep(0.1)
            assert await _worker_of(app, "s") != pid


async def test_hint_moves_session_when_worker_dies(make_config):
    async with snakepit.start(make_config(size=2, affinity="hint")) as app:
        pid = await _worker_of(app, "s")
        os.kill(pid, signal.SIGKILL)
        with trio.fail_after(10):
            while True:   # until the host noticed; hint mode must move the session
                try:
                    new = await _worker_of(app, "s")
                except errors.WorkerCrashed:
                    continue
                break
        assert new != pid


async def test_strict_queue_waits_for_its_worker(make_config):
    async with snakepit.start(make_config(size=2, affinity="strict_queue")) as app:
        pid = await _worker_of(app, "s")
        order = []

        async def busy():
            await app.execute("sleep", {"seconds": 0.5}, session_id="s")
            order.append("sleep")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            await trio.sleep(0.1)
            assert await _worker_of(app, "s") == pid   # waited for the same worker
            order.append("second")
        assert order == ["sleep", "second"]


async def test_strict_fail_fast_and_unavailable(make_config):
    async with snakepit.start(make_config(size=2, affinity="strict_fail_fast")) as app:
        pid = await _worker_of(app, "s")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(app.execute, "sleep", {"seconds": 0.5}, session_id="s"))
            await trio.sleep(0.1)
            with pytest.raises(errors.WorkerBusy):
                await app.execute("ping", session_id="s")
        os.kill(pid, signal.SIGKILL)
        with trio.fail_after(10):
            while True:
                try:
                    await app.execute("ping", session_id="s")
                except errors.SessionWorkerUnavailable as e:
                    assert e.details["session_id"] == "s"
                    break
                except errors.WorkerCrashed:
                    pass
                await trio.sleep(0.05)
