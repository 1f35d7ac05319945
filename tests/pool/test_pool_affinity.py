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
                    assert "app.sessions.rebind('s')" in str(e)   # says how to recover
                    assert "app.sessions.delete('s')" in str(e)
                    break
                except errors.WorkerCrashed:
                    pass
                await trio.sleep(0.05)
        with pytest.raises(errors.SessionWorkerUnavailable):   # until it is re-bound
            await app.execute("ping", session_id="s")
        await app.sessions.register_variable("s", "kept", "integer", 7)
        await app.sessions.rebind("s")
        new_pid = await _worker_of(app, "s")
        assert new_pid != pid and await _worker_of(app, "s") == new_pid   # sticks again
        assert await app.sessions.get_variable("s", "kept") == 7          # data kept
        with pytest.raises(errors.SessionNotFound):
            await app.sessions.rebind("no-such-session")
