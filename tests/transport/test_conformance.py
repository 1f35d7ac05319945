"""What every Transport must do, checked against each implementation over a real worker.

The pool is tested once, on the default transport; this suite is where the transports are
held to the same contract (the model is trio's ``check_two_way_stream``): one table of calls,
the same answers, the same errors, cancellation that reaches the worker, streams that end
early without hurting the next call, and a closed transport that fails with WorkerCrashed.
"""

from contextlib import asynccontextmanager

import pytest
import trio

import snakepit
from snakepit import telemetry
from snakepit.errors import DeadlinePassed, RequestTimeout, WorkerCrashed
from snakepit.transport.base import Transport
from snakepit_bridge.proto import bridge_pb2 as pb

pytestmark = pytest.mark.parametrize("transport", ["grpc", "pipe"])


@asynccontextmanager
async def transport_of(make_config, **kw):
    """The transport of a live worker of a one-worker pool (heartbeats off: the test is the
    only caller besides the worker's telemetry stream)."""
    config = make_config(size=1, shutdown_grace=1.0, heartbeat=snakepit.HeartbeatConfig(
        interval=3600.0, timeout=3600.0), **kw)
    async with snakepit.start(config) as app:
        [worker] = app.pool().runtime.workers.values()
        t: Transport = worker.transport
        yield t


def request(tool, args=b"{}", rid="r1", timeout=0.0):
    return pb.ExecuteRequest(request_id=rid, tool=tool, args_json=args, timeout=timeout,
                             correlation_id="c1")


async def test_unary_calls(make_config, transport):
    async with transport_of(make_config) as t:
        pong = await t.ping()
        assert pong.pid > 0 and pong.worker_id == "default-1"
        beat = await t.heartbeat(7)
        assert beat.seq == 7 and list(beat.running) == []
        tools = {tool.name for tool in (await t.describe()).tools}
        assert {"add", "echo", "stream_progress"} <= tools
        ok = await t.execute(request("add", b'{"a": 2, "b": 3}'))
        assert ok.success and ok.result_json == b"5"
        bad = await t.execute(request("no_such_tool"))
        assert not bad.success and bad.error.category == "unknown_tool"
        raised = await t.execute(request("error_demo", b'{"error_type": "value"}'))
        assert not raised.success and raised.error.category == "tool"
        assert (await t.init_session("s1")).created
        assert (await t.end_session("s1")).existed


async def test_cancellation_reaches_the_worker(make_config, transport):
    async with transport_of(make_config) as t:
        with trio.move_on_after(0.3):
            await t.execute(request("sleep", b'{"seconds": 30}', rid="slow"))
        # The worker lists the request until the tool saw its cancellation and returned.
        with trio.fail_after(10):
            while "slow" in (await t.heartbeat(1)).running:
                await trio.sleep(0.02)
        ok = await t.execute(request("add", b'{"a": 1, "b": 1}', rid="next"))
        assert ok.result_json == b"2"


async def test_the_callers_deadline_ends_the_call_and_reaches_the_worker(make_config,
                                                                         transport):
    async with transport_of(make_config) as t:
        for call in (lambda d: t.execute(request("sleep", b'{"seconds": 30}', rid="d1"),
                                         deadline=d),
                     lambda d: t.execute_batch(pb.ExecuteBatch(request_id="d2", requests=[
                         request("sleep", b'{"seconds": 30}', rid="d2")]), deadline=d)):
            with trio.fail_after(10), pytest.raises(DeadlinePassed):
                await call(trio.current_time() + 0.3)
            with trio.fail_after(10):   # the worker was told to cancel: the tool ends there
                while (await t.heartbeat(1)).running:
                    await trio.sleep(0.02)
        ok = await t.execute(request("add", b'{"a": 1, "b": 1}', rid="next"),
                             deadline=trio.current_time() + 30)
        assert ok.result_json == b"2"


async def test_backstop_deadline(make_config, transport, monkeypatch):
    """A worker that never answers still ends the call: timeout + EXECUTE_BACKSTOP."""
    from snakepit.transport import base
    monkeypatch.setattr(base, "EXECUTE_BACKSTOP", 0.2)
    async with transport_of(make_config) as t:
        with pytest.raises(RequestTimeout):
            await t.execute(request("sleep", b'{"seconds": 30}', rid="bs"), timeout=0.1)


async def test_streams(make_config, transport):
    async with transport_of(make_config) as t:
        async with t.stream(request("stream_progress", b'{"steps": 5, "delay_ms": 0}', rid="s")) as chunks:
            got = [c async for c in chunks]
        assert [c.chunk_id for c in got] == list(range(1, len(got) + 1))
        assert got[-1].is_final and not any(c.is_final for c in got[:-1])
        for rid in ("early1", "early2"):   # leaving early does not hurt the next stream
            async with t.stream(request("stream_progress", b'{"steps": 1000, "delay_ms": 1}',
                                        rid=rid)) as chunks:
                async for c in chunks:
                    break
        async with t.stream(request("stream_progress", b'{"steps": 3, "delay_ms": 0}', rid="s2")) as chunks:
            assert len([c async for c in chunks]) >= 3


async def test_telemetry_channel(make_config, transport):
    """The worker's events reach the host over the telemetry channel, with the worker's id."""
    got = []
    telemetry.attach_many("conformance", [("snakepit", "python", "x", "y")],
                          lambda event, m, md, c: got.append((event[-1], md["worker_id"])))
    try:
        async with transport_of(make_config, adapter="pool_adapters:EmittingAdapter") as t:
            await t.execute(request("emit", b'{"name": "x.y"}', rid="t1"))
            with trio.fail_after(10):
                while not got:
                    await trio.sleep(0.01)
            assert got[0] == ("y", "default-1")
    finally:
        telemetry.detach("conformance")


async def test_closed_transport_fails_with_worker_crashed(make_config, transport):
    async with transport_of(make_config) as t:
        await t.aclose()
        with pytest.raises(WorkerCrashed):
            await t.ping()
        with pytest.raises(WorkerCrashed):
            await t.execute(request("add", b'{"a": 1, "b": 2}'))


async def test_batches(make_config, transport):
    """Several calls of one tool: a response per item, in order; an item that times out ends
    the batch there (the items after it never run, the caller sends them again)."""
    async with transport_of(make_config) as t:
        batch = pb.ExecuteBatch(request_id="b1", requests=[
            request("add", f'{{"a": {i}, "b": 1}}'.encode(), rid=f"b1-{i}") for i in range(3)])
        responses = await t.execute_batch(batch)
        assert [r.result_json for r in responses] == [b"1", b"2", b"3"]
        batch = pb.ExecuteBatch(request_id="b2", requests=[
            request("sleep", b'{"seconds": 0.01}', rid="b2-0", timeout=5.0),
            request("sleep", b'{"seconds": 30}', rid="b2-1", timeout=0.3),
            request("sleep", b'{"seconds": 0.01}', rid="b2-2", timeout=5.0)])
        with trio.fail_after(20):
            responses = await t.execute_batch(batch)
        assert [r.success for r in responses] == [True, False]
        assert responses[1].error.category == "timeout"
        ok = await t.execute(request("add", b'{"a": 1, "b": 1}', rid="after"))
        assert ok.result_json == b"2"
