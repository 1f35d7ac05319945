"""GrpcTransport: grpcio's sync stubs driven from trio (docs/architecture.md).

Unary calls use the stub's ``.future()``; its done-callback wakes the waiting trio task through
``TrioToken.run_sync_soon`` (and never raises, even after the run ended); cancelling the task
cancels the future, which cancels the RPC in the worker. A stream's messages are read by a
thread of its own and cross into trio a batch at a time (:class:`Pump`): the thread appends to
a bounded buffer and wakes the consumer only when it waits; the consumer takes the whole buffer
in one step. A full buffer blocks the reading thread, so a slow consumer holds the worker back
(gRPC flow control) instead of buffering without bound; leaving the stream block early cancels
the RPC.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import grpc  # noqa: E402
import grpc.experimental  # noqa: E402  (ChannelOptions; not imported by `import grpc`)
import trio  # noqa: E402

from snakepit.errors import (DeadlinePassed, InvalidArgumentsError, RequestTimeout,  # noqa
                             SnakepitError, TransportError, WorkerCrashed)
from snakepit.transport.base import TIMEOUTS, backstop  # noqa: E402
from snakepit_bridge import shm  # noqa: E402
from snakepit_bridge.proto import bridge_pb2 as pb  # noqa: E402
from snakepit_bridge.proto import bridge_pb2_grpc as pbg  # noqa: E402
from snakepit_bridge.protocol import (GRPC_MESSAGE_OPTIONS, MAX_MESSAGE,  # noqa: E402
                                      SECRET_HEADER, MessageTooLarge)

# SingleThreadedUnaryStream: a stream's reading thread polls the call itself, instead of
# waiting on a condition that grpcio's channel thread signals for every message.
CHANNEL_OPTIONS = [*GRPC_MESSAGE_OPTIONS, ("grpc.enable_retries", 0),
                   (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
STREAM_BUFFER = 64   # messages a stream holds on the host beyond what gRPC itself buffers

_CRASH_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


def map_rpc_error(exc: BaseException, address: str, what: str) -> SnakepitError:
    if isinstance(exc, grpc.FutureCancelledError):
        return WorkerCrashed(f"{what} to {address} was cancelled (worker closing)")
    if not isinstance(exc, grpc.RpcError):
        return TransportError(f"{what} to {address} failed: {exc!r}")
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        details += f" (gRPC messages are limited to {MAX_MESSAGE} bytes: {_WAY_OUT})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RequestTimeout(f"{what} to {address} exceeded its deadline",
                              details={"grpc": code.name})
    if code in _CRASH_CODES:
        return WorkerCrashed(f"{what} to {address} failed: {code.name} {details}",
                             details={"grpc": code.name})
    return TransportError(f"{what} to {address} failed: {code.name} {details}",
                          details={"grpc": code.name})


_WAY_OUT = ("the pipe transport (transport='pipe') carries blobs through shared memory, "
            "whatever their size")


def _inline_blobs(request: Any, address: str, what: str) -> None:
    """gRPC has no shared memory: the request's ``pending-`` buffers (``validate.encode_args``)
    go into the message, unless it would exceed ``MAX_MESSAGE`` (refused before copying)."""
    pending = shm.pending_size(request)
    if not pending:
        return   # (an inline request over the limit: grpcio refuses it, map_rpc_error says why)
    size = request.ByteSize() + pending
    if size > MAX_MESSAGE:
        too_big = MessageTooLarge(f"the {what} request to {address}", size, MAX_MESSAGE,
                                  "protocol.MAX_MESSAGE, gRPC", _WAY_OUT)
        raise InvalidArgumentsError(str(too_big), details={
            "size": size, "limit": MAX_MESSAGE, "allowed": "transport='pipe'"})
    try:
        shm.materialize(request)
    except shm.SegmentError as exc:
        raise TransportError(f"{what} to {address}: {exc}") from None


class TelemetryStream:
    def __init__(self, controls: "queue.Queue[Any]", events: "Messages") -> None:
        self._controls, self.events = controls, events

    def send(self, control: Any) -> None:
        self._controls.put(control)


class GrpcTransport:
    def __init__(self, address: str, secret: str, *, tls: tuple[Any, str] | None = None
                 ) -> None:
        """``tls``: (a ``snakepit_bridge.tls.Tls``, the name the worker's certificate must
        have): mutual TLS for a worker of a remote placement; None: plaintext on loopback."""
        self.address = address
        self._metadata = ((SECRET_HEADER, secret),)
        if tls is not None:
            creds, name = tls
            self._channel = grpc.secure_channel(
                address, creds.channel_credentials(),
                options=[*CHANNEL_OPTIONS, *creds.channel_options(name)])
        else:
            self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = pbg.WorkerServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._token = trio.lowlevel.current_trio_token()
        self._closed = False
        # A stream's pump holds a thread for the stream's whole life (the telemetry stream:
        # the worker's). On trio's default limiter (40 threads) 40 workers' pumps would starve
        # every other to_thread call in the process (session saves, channel closes, streams).
        self._pumps = trio.CapacityLimiter(math.inf)

    async def _unary(self, method: str, request: Any, timeout: float | None = None,
                     deadline: float | None = None) -> Any:
        """``method`` called with ``timeout`` (grpcio's deadline), or until ``deadline`` (trio
        time: grpcio's timer ends the call there, no cancel scope needed) if that is earlier,
        then DeadlinePassed."""
        if self._closed:
            raise WorkerCrashed(f"transport to {self.address} is closed")
        ours = False
        if deadline is not None:
            left = max(0.0, deadline - trio.current_time())
            if timeout is None or left < timeout:
                timeout, ours = left, True
        fut = getattr(self._stub, method).future(request, metadata=self._metadata,
                                                 timeout=timeout)
        task = trio.lowlevel.current_task()
        token = self._token
        waiting = [True]

        def wake() -> None:          # on the trio thread
            if waiting[0]:
                waiting[0] = False
                trio.lowlevel.reschedule(task)

        def on_done(_: Any) -> None:  # on a grpc thread (or ours): must never raise
            try:
                token.run_sync_soon(wake)
            except trio.RunFinishedError:
                pass

        def abort(_: Any) -> Any:
            waiting[0] = False
            fut.cancel()
            return trio.lowlevel.Abort.SUCCEEDED

        fut.add_done_callback(on_done)
        await trio.lowlevel.wait_task_rescheduled(abort)
        try:
            return fut.result()
        except (grpc.RpcError, grpc.FutureCancelledError) as exc:
            error = map_rpc_error(exc, self.address, method)
            if ours and isinstance(error, RequestTimeout):
                raise DeadlinePassed(error.message, details=error.details) from None
            raise error from None

    async def start(self, nursery: trio.Nursery) -> None:
        """Nothing to run: grpcio's own threads carry the calls."""

    async def ping(self) -> Any:
        return await self._unary("Ping", pb.PingRequest(message="ping"), TIMEOUTS["ping"])

    async def heartbeat(self, seq: int) -> Any:
        return await self._unary("Heartbeat", pb.HeartbeatRequest(seq=seq))

    async def describe(self) -> Any:
        return await self._unary("Describe", pb.DescribeRequest(), TIMEOUTS["describe"])

    async def execute(self, request: Any, *, timeout: float | None = None,
                      deadline: float | None = None) -> Any:
        _inline_blobs(request, self.address, "Execute")
        return await self._unary("Execute", request, backstop(timeout), deadline)

    async def execute_batch(self, batch: Any, *, timeout: float | None = None,
                            deadline: float | None = None) -> Any:
        """One unary call per item (gRPC has no batch frame), in order, until one times out."""
        responses = []
        for request in batch.requests:
            response = await self.execute(request, timeout=request.timeout or None,
                                          deadline=deadline)
            responses.append(response)
            if not response.success and response.error.category == "timeout":
                break
        return responses

    async def init_session(self, session_id: str, metadata_json: bytes = b"") -> Any:
        return await self._unary("InitSession", pb.InitSessionRequest(
            session_id=session_id, metadata_json=metadata_json), TIMEOUTS["init_session"])

    async def end_session(self, session_id: str) -> Any:
        return await self._unary("EndSession", pb.EndSessionRequest(session_id=session_id),
                                 TIMEOUTS["end_session"])

    @asynccontextmanager
    async def stream(self, request: Any) -> AsyncIterator[AsyncIterator[Any]]:
        if self._closed:
            raise WorkerCrashed(f"transport to {self.address} is closed")
        _inline_blobs(request, self.address, "ExecuteStream")
        call = self._stub.ExecuteStream(request, metadata=self._metadata)
        async with self._pumping(call, "ExecuteStream") as messages:
            yield messages

    @asynccontextmanager
    async def telemetry(self, control: Any) -> AsyncIterator["TelemetryStream"]:
        """The worker's event stream; ``send(control)`` changes its filters at run time."""
        if self._closed:
            raise WorkerCrashed(f"transport to {self.address} is closed")
        controls: queue.Queue[Any] = queue.Queue()
        controls.put(control)
        call = self._stub.StreamTelemetry(iter(controls.get, None), metadata=self._metadata)
        try:
            async with self._pumping(call, "StreamTelemetry") as messages:
                yield TelemetryStream(controls, messages)
        finally:
            controls.put(None)

    @asynccontextmanager
    async def _pumping(self, call: Any, what: str) -> AsyncIterator["Messages"]:
        """The call's messages, read by a thread of their own; leaving cancels the call."""
        pump = Pump(call)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.to_thread.run_sync, pump.run,
                                                 limiter=self._pumps))
            try:
                yield Messages(pump, self.address, what)
            finally:
                pump.close()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await trio.to_thread.run_sync(self._channel.close)


class Pump:
    """The messages of one gRPC call, from the thread that reads them to one trio task, a
    batch at a time.

        pump = Pump(call)                       # in trio: remembers the run's token
        # a thread: pump.run()                  # reads the call until it ends or is closed
        batch = await pump.take()               # every message read so far (waits for one)
        pump.close()                            # cancels the call; the thread returns

    The reading thread appends to a buffer of at most ``limit`` messages and wakes the consumer
    only if it waits, so a burst costs one wake-up, not one per message. A full buffer blocks
    the reading thread until the consumer takes it. The call's end is the last item of the
    last batch: an ``End`` (with the ``grpc.RpcError`` it failed with, if any).
    """

    def __init__(self, call: Any, limit: int = STREAM_BUFFER) -> None:
        self._call, self._limit = call, limit
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._buffer: list[Any] = []
        self._ended = False
        self._closed = False
        self._waiter: trio.lowlevel.Task | None = None
        self._reader_blocked = False
        self._batches = 0

    def statistics(self) -> dict[str, Any]:
        """``buffered`` messages, ``batches`` taken, ``reader_blocked``: the reading thread
        waits for room."""
        with self._lock:
            return {"buffered": len(self._buffer), "batches": self._batches,
                    "reader_blocked": self._reader_blocked}

    # -- the reading thread ------------------------------------------------------------------
    def run(self) -> None:
        error: BaseException | None = None
        try:
            for message in self._call:
                if not self._put(message):
                    return
        except grpc.RpcError as exc:
            error = exc
        self._put(End(error), last=True)

    def _put(self, item: Any, last: bool = False) -> bool:
        with self._lock:
            while len(self._buffer) >= self._limit and not self._closed and not last:
                self._reader_blocked = True
                self._room.wait()
            self._reader_blocked = False
            if self._closed:
                return False
            self._buffer.append(item)
            self._ended = last
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                self._token.run_sync_soon(trio.lowlevel.reschedule, waiter)
            except trio.RunFinishedError:
                return False
        return True

    # -- the trio side -----------------------------------------------------------------------
    async def take(self) -> list[Any]:
        """Every message read so far, in order (at least one; after the ``End``: [])."""
        while True:
            with self._lock:
                ready = bool(self._buffer) or self._ended or self._closed
                if not ready:
                    self._waiter = trio.lowlevel.current_task()
            if ready:
                await trio.lowlevel.checkpoint()   # one schedule point per batch
                with self._lock:
                    batch, self._buffer = self._buffer, []
                    self._batches += bool(batch)
                    self._reader_blocked = False   # there is room now
                    self._room.notify()
                return batch
            await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        with self._lock:
            if self._waiter is None:     # the reader is waking us already
                return trio.lowlevel.Abort.FAILED
            self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close(self) -> None:
        """Cancel the call and drop what is buffered; the reading thread returns soon after."""
        with self._lock:
            self._closed = True
            self._buffer.clear()
            self._room.notify_all()
        self._call.cancel()


class End:
    """The last item of a call: ``error`` is the ``grpc.RpcError`` it ended with, or None."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Messages:
    """The async iterator over a pumped call: messages one by one, without a task switch
    between the messages of one batch; a failed call raises its mapped error at the end."""

    def __init__(self, pump: Pump, address: str, what: str) -> None:
        self._pump, self._address, self._what = pump, address, what
        self._batch: list[Any] = []
        self._next = 0
        self._done = False

    def __aiter__(self) -> "Messages":
        return self

    async def __anext__(self) -> Any:
        if self._next >= len(self._batch):
            if self._done:
                raise StopAsyncIteration
            self._batch, self._next = await self._pump.take(), 0
            if not self._batch:
                self._done = True
                raise StopAsyncIteration
        item = self._batch[self._next]
        self._next += 1
        if isinstance(item, End):
            self._done = True
            self._batch = []
            if item.error is not None:
                raise map_rpc_error(item.error, self._address, self._what)
            raise StopAsyncIteration
        return item
