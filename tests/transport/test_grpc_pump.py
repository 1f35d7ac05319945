"""The gRPC transport's stream pump: a thread reads the call, trio takes a batch at a time.

Most tests drive the pump with a fake call (an iterator the test feeds, as grpcio's response
iterator is), so order, batching, early close and backpressure are checked without a worker
process or any timing; the last ones run real gRPC workers.
"""

import queue
import threading
from contextlib import asynccontextmanager

import grpc
import pytest
import trio
import trio.testing

import snakepit
from snakepit.errors import WorkerCrashed
from snakepit.transport.grpc import STREAM_BUFFER, GrpcTransport
from snakepit_bridge.proto import bridge_pb2 as pb

_STOP, _CANCELLED = object(), object()


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "fake"


class FakeCall:
    """grpcio's response iterator as the pump sees it: the next message (blocking until the
    test feeds one), StopIteration at the end, an RpcError (CANCELLED once cancelled)."""

    def __init__(self, items=(), *, end: bool = True) -> None:
        self._queue: queue.Queue = queue.Queue()
        for item in items:
            self._queue.put(item)
        if end:
            self._queue.put(_STOP)
        self.pulled = 0
        self.cancelled = threading.Event()

    def __iter__(self) -> "FakeCall":
        return self

    def __next__(self):
        item = self._queue.get()
        if item is _STOP:
            raise StopIteration
        if item is _CANCELLED:
            raise FakeRpcError(grpc.StatusCode.CANCELLED)
        if isinstance(item, BaseException):
            raise item
        self.pulled += 1
        return item

    def cancel(self) -> None:
        self.cancelled.set()
        self._queue.put(_CANCELLED)


@asynccontextmanager
async def pumped(call):
    """The transport's own pumping of ``call`` (a transport to nowhere: no call reaches it)."""
    transport = GrpcTransport("127.0.0.1:9", "secret")
    try:
        async with transport._pumping(call, "ExecuteStream") as messages:
            yield messages
    finally:
        await transport.aclose()


async def until(condition) -> None:
    """Poll (the reading thread is outside trio) until ``condition()``, for at most 10 s."""
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.001)


def pump_of(messages):
    return messages._pump


async def test_messages_arrive_in_order_a_batch_at_a_time():
    n = 1000
    call = FakeCall(range(n))
    async with pumped(call) as messages:
        pump = pump_of(messages)
        # let the reader fill the buffer before the first take: that batch is a full one
        await until(lambda: pump.statistics()["reader_blocked"])
        got = [m async for m in messages]
    assert got == list(range(n))
    batches = pump.statistics()["batches"]
    assert batches < n // 2   # one wake-up per batch, not per message


async def test_a_slow_consumer_holds_the_reader_back_with_bounded_memory():
    call = FakeCall(range(100_000))
    async with pumped(call) as messages:
        pump = pump_of(messages)
        taken = 0
        for _ in range(3):
            await until(lambda: pump.statistics()["reader_blocked"])
            stats = pump.statistics()
            assert stats["buffered"] == STREAM_BUFFER
            # the buffer, plus the one message the blocked reader holds: nothing more read
            assert call.pulled == taken + STREAM_BUFFER + 1
            for _ in range(STREAM_BUFFER):   # one batch, message by message
                assert await messages.__anext__() == taken
                taken += 1
    assert call.cancelled.is_set()


async def test_leaving_mid_batch_cancels_the_call_and_drops_the_rest():
    call = FakeCall(range(10_000))
    async with pumped(call) as messages:
        pump = pump_of(messages)
        await until(lambda: pump.statistics()["reader_blocked"])
        got = []
        async for m in messages:
            got.append(m)
            if len(got) == 3:
                break
    # the block returned: the reading thread has ended
    assert got == [0, 1, 2]
    assert call.cancelled.is_set()
    assert pump.statistics()["buffered"] == 0
    assert call.pulled <= STREAM_BUFFER * 2 + 1


async def test_an_error_ends_the_stream_after_the_messages_before_it():
    call = FakeCall([1, 2, FakeRpcError(grpc.StatusCode.UNAVAILABLE)])
    got = []
    async with pumped(call) as messages:
        with pytest.raises(WorkerCrashed, match="UNAVAILABLE"):
            async for m in messages:
                got.append(m)
        with pytest.raises(StopAsyncIteration):   # ended: stays ended
            await messages.__anext__()
    assert got == [1, 2]


async def test_cancelling_a_consumer_that_waits_for_a_message():
    call = FakeCall(end=False)   # nothing comes
    async with pumped(call) as messages:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                async def consume():
                    await messages.__anext__()

                nursery.start_soon(consume)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
        assert scope.cancelled_caught
    assert call.cancelled.is_set()


# -- real workers ------------------------------------------------------------------------------
@asynccontextmanager
async def grpc_transport(make_config, **kw):
    config = make_config(size=1, transport="grpc", heartbeat=snakepit.HeartbeatConfig(
        interval=3600.0, timeout=3600.0), **kw)
    async with snakepit.start(config) as app:
        [worker] = app.pool().runtime.workers.values()
        yield worker.transport


def request(tool, args, rid):
    return pb.ExecuteRequest(request_id=rid, tool=tool, args_json=args, correlation_id="c1")


async def test_a_long_stream_keeps_order_metadata_and_one_final_chunk(make_config):
    async with grpc_transport(make_config, adapter="pool_adapters:StreamShapes") as t:
        n = 3 * STREAM_BUFFER + 5
        async with t.stream(request("marks_final", b'{"n": %d}' % n, "s1")) as chunks:
            got = [c async for c in chunks]
        assert [c.chunk_id for c in got] == list(range(1, n + 2))
        assert [c.data_json for c in got[:n]] == [str(i).encode() for i in range(n)]
        assert [c.is_final for c in got] == [False] * n + [True]
        assert dict(got[-1].metadata) == {"why": "done"}


async def test_leaving_a_real_stream_mid_batch_then_calling_again(make_config):
    async with grpc_transport(make_config) as t:
        async with t.stream(request("ping_stream", b'{"count": 100000}', "s1")) as chunks:
            async for chunk in chunks:
                if chunk.chunk_id == 3:
                    break
        ok = await t.execute(request("add", b'{"a": 1, "b": 2}', "a1"))
        assert ok.success and ok.result_json == b"3"
