"""Pipelining (PoolConfig.pipeline): requests sent ahead to wait inside a worker whose slots are
all busy, against real worker processes. The tool `block_on` holds a slot until the test writes
to its FIFO and creates a marker file when it starts, so every step is an event, not a delay."""

import functools
import os
import signal

import pytest
import trio

import snakepit
from snakepit import errors

from gates import Gate, wait_for

MISBEHAVING = "pool_adapters:MisbehavingAdapter"


def in_flight(app):
    return sorted(w["in_flight"] for w in app.workers())


async def worker_has_read_what_was_sent(app):
    """A ping straight to the only worker's transport: its answer comes after the worker has
    read every frame sent before it (one reading thread takes them in order), so a cancel sent
    before it has reached the worker. Releasing the first call before that would race the
    cancel: the request in line could start before its cancel arrives."""
    (worker,) = app.pool().runtime.workers.values()
    await worker.transport.ping()


async def test_a_request_waits_inside_the_busy_worker_and_the_next_in_the_queue(
        make_config, tmp_path):
    first, second = Gate(tmp_path, "first"), Gate(tmp_path, "second")
    results = []

    async def call(tool, args):
        results.append(await app.execute(tool, args, timeout=60.0))

    config = make_config(size=1, adapter=MISBEHAVING, pipeline=1, queue_timeout=60.0)
    async with snakepit.start(config) as app, trio.open_nursery() as nursery:
        nursery.start_soon(call, "block_on", first.args)
        await first.running()
        nursery.start_soon(call, "block_on", second.args)
        await wait_for(lambda: in_flight(app) == [2])       # sent ahead, not queued here
        assert app.stats()["queued"] == 0
        nursery.start_soon(call, "ping", {})
        await wait_for(lambda: app.stats()["queued"] == 1)  # the line is full: it waits here
        assert in_flight(app) == [2] and not second.ran()
        first.release()
        await second.running()                              # it started as the first ended
        second.release()
    assert sorted(r for r in results if isinstance(r, str)) == ["done", "done"]
    assert [r["status"] for r in results if isinstance(r, dict)] == ["pong"]


async def test_a_request_that_times_out_in_the_worker_line_never_starts(make_config, tmp_path):
    first, second = Gate(tmp_path, "first"), Gate(tmp_path, "second")
    config = make_config(size=1, adapter=MISBEHAVING, pipeline=1, cancel_grace=60.0,
                         queue_timeout=90.0)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.execute, "block_on", first.args)
            await first.running()
            with pytest.raises(errors.RequestTimeout):
                await app.execute("block_on", second.args, timeout=0.3)
            await worker_has_read_what_was_sent(app)
            first.release()
        # The worker answers the next call only after its line has passed the given-up
        # request, which it skipped: it never created its marker.
        # the same process answers: the worker confirmed the end, it was not killed at cancel_grace
        assert (await app.execute("ping", timeout=90.0))["pid"] == pid
        assert not second.ran()


async def test_a_request_cancelled_in_the_worker_line_is_not_run(make_config, tmp_path):
    """The caller of a request sent ahead is cancelled: the first call still finishes."""
    first, second = Gate(tmp_path, "first"), Gate(tmp_path, "second")
    outcome = {}
    # the worker stays out of rotation until a heartbeat confirms the cancelled request is gone:
    # under load that can take a while, and the ping waits in the queue meanwhile
    config = make_config(size=1, adapter=MISBEHAVING, pipeline=1, cancel_grace=60.0,
                         queue_timeout=90.0)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]

        async def first_call():
            outcome["first"] = await app.execute("block_on", first.args, timeout=60.0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first_call)
            await first.running()
            async with trio.open_nursery() as inner:
                inner.start_soon(app.execute, "block_on", second.args)
                await wait_for(lambda: in_flight(app) == [2])
                inner.cancel_scope.cancel()
            await worker_has_read_what_was_sent(app)
            first.release()
        assert outcome["first"] == "done"
        # the same process answers: the worker confirmed the end, it was not killed at cancel_grace
        assert (await app.execute("ping", timeout=90.0))["pid"] == pid
        assert not second.ran()


async def test_requests_waiting_in_a_worker_that_dies_fail_with_worker_crashed(
        make_config, tmp_path):
    first, second = Gate(tmp_path, "first"), Gate(tmp_path, "second")
    failures = []

    async def call(gate):
        try:
            await app.execute("block_on", gate.args, timeout=60.0)
        except errors.WorkerCrashed as exc:
            failures.append(exc)

    config = make_config(size=1, adapter=MISBEHAVING, pipeline=1)
    async with snakepit.start(config) as app:
        pid = app.workers()[0]["pid"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, first)
            await first.running()
            nursery.start_soon(call, second)
            await wait_for(lambda: in_flight(app) == [2])
            os.kill(pid, signal.SIGKILL)
        assert len(failures) == 2 and not second.ran()
        assert (await app.execute("ping", timeout=30.0))["pid"] != pid   # replaced


async def test_a_free_slot_is_taken_before_a_place_in_a_line(make_config, tmp_path):
    gates = [Gate(tmp_path, f"g{i}") for i in range(3)]
    config = make_config(size=2, adapter=MISBEHAVING, pipeline=1, queue_timeout=60.0)
    async with snakepit.start(config) as app, trio.open_nursery() as nursery:
        nursery.start_soon(app.execute, "block_on", gates[0].args)
        await gates[0].running()
        nursery.start_soon(app.execute, "block_on", gates[1].args)
        await gates[1].running()          # on the other worker, not in the first one's line
        assert in_flight(app) == [1, 1]
        nursery.start_soon(app.execute, "block_on", gates[2].args)
        await wait_for(lambda: in_flight(app) == [1, 2])
        assert not gates[2].ran()
        for gate in gates:
            await gate.running()
            gate.release()


async def test_strict_queue_sends_a_session_ahead_to_its_own_worker(make_config, tmp_path):
    gate = Gate(tmp_path, "bound")
    config = make_config(size=2, adapter=MISBEHAVING, pipeline=1, affinity="strict_queue")
    async with snakepit.start(config) as app:
        pid = await app.execute("pid", session_id="s")
        got = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(app.execute, "block_on", gate.args, session_id="s"))
            await gate.running()

            async def second():
                got.append(await app.execute("pid", session_id="s", timeout=60.0))
            nursery.start_soon(second)
            # in its worker's line, although the other worker is idle
            await wait_for(lambda: in_flight(app) == [0, 2])
            gate.release()
        assert got == [pid]


async def test_strict_fail_fast_still_fails_on_a_busy_worker(make_config, tmp_path):
    gate = Gate(tmp_path, "bound")
    config = make_config(size=2, adapter=MISBEHAVING, pipeline=1,
                         affinity="strict_fail_fast")
    async with snakepit.start(config) as app:
        await app.execute("pid", session_id="s")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(app.execute, "block_on", gate.args, session_id="s"))
            await gate.running()
            with pytest.raises(errors.WorkerBusy):
                await app.execute("pid", session_id="s")
            gate.release()


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_pipeline_is_a_non_negative_integer(value):
    with pytest.raises(Exception, match="pipeline") as info:
        snakepit.PoolConfig(pipeline=value)
    assert repr(value) in str(info.value)
