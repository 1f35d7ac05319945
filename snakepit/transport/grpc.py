"""GrpcTransport: grpcio's sync stubs driven from trio (docs/architecture.md).

Unary calls use the stub's ``.future()``; its done-callback wakes the waiting trio task through
``TrioToken.run_sync_soon`` (and never raises, even after the run ended); cancelling the task
cancels the future, which cancels the RPC in the worker. A stream is pumped by a worker thread
into a bounded trio memory channel, so a slow consumer holds the producer back instead of
buffering without bound; leaving the stream block early cancels the RPC.
"""

from __future__ import annotations

import functools
import math
import queue
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import grpc  # noqa: E402
import trio  # noqa: E402

from snakepit.errors import (InvalidArgumentsError, RequestTimeout, SnakepitError,  # noqa
                             TransportError, WorkerCrashed)
from snakepit.transport.base import TIMEOUTS, backstop  # noqa: E402
from snakepit_bridge import shm  # noqa: E402
from snakepit_bridge.proto import bridge_pb2 as pb  # noqa: E402
from snakepit_bridge.proto import bridge_pb2_grpc as pbg  # noqa: E402
from snakepit_bridge.protocol import (GRPC_MESSAGE_OPTIONS, MAX_MESSAGE,  # noqa: E402
                                      SECRET_HEADER, MessageTooLarge)

CHANNEL_OPTIONS = [*GRPC_MESSAGE_OPTIONS, ("grpc.enable_retries", 0)]
STREAM_BUFFER = 64

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
    def __init__(self, controls: "queue.Queue[Any]", events: "_Messages") -> None:
        self._controls, self.events = controls, events

    def send(self, control: Any) -> None:
        self._controls.put(control)


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


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

    async def _unary(self, method: str, request: Any, timeout: float | None = None) -> Any:
        if self._closed:
            raise WorkerCrashed(f"transport to {self.address} is closed")
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
            raise map_rpc_error(exc, self.address, method) from None

    async def start(self, nursery: trio.Nursery) -> None:
        """Nothing to run: grpcio's own threads carry the calls."""

    async def ping(self) -> Any:
        return await self._unary("Ping", pb.PingRequest(message="ping"), TIMEOUTS["ping"])

    async def heartbeat(self, seq: int) -> Any:
        return await self._unary("Heartbeat", pb.HeartbeatRequest(seq=seq))

    async def describe(self) -> Any:
        return await self._unary("Describe", pb.DescribeRequest(), TIMEOUTS["describe"])

    async def execute(self, request: Any, *, timeout: float | None = None) -> Any:
        _inline_blobs(request, self.address, "Execute")
        return await self._unary("Execute", request, backstop(timeout))

    async def execute_batch(self, batch: Any, *, timeout: float | None = None) -> Any:
        """One unary call per item (gRPC has no batch frame), in order, until one times out."""
        responses = []
        for request in batch.requests:
            response = await self.execute(request, timeout=request.timeout or None)
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
        send, recv = trio.open_memory_channel[Any](STREAM_BUFFER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.to_thread.run_sync, _pump, call, send,
                                                 limiter=self._pumps))
            try:
                yield _Messages(recv, self.address)
            finally:
                call.cancel()
                await recv.aclose()

    @asynccontextmanager
    async def telemetry(self, control: Any) -> AsyncIterator["TelemetryStream"]:
        """The worker's event stream; ``send(control)`` changes its filters at run time."""
        if self._closed:
            raise WorkerCrashed(f"transport to {self.address} is closed")
        controls: queue.Queue[Any] = queue.Queue()
        controls.put(control)
        call = self._stub.StreamTelemetry(iter(controls.get, None), metadata=self._metadata)
        send, recv = trio.open_memory_channel[Any](STREAM_BUFFER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.to_thread.run_sync, _pump, call, send,
                                                 limiter=self._pumps))
            try:
                yield TelemetryStream(controls, _Messages(recv, self.address))
            finally:
                call.cancel()
                controls.put(None)
                await recv.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await trio.to_thread.run_sync(self._channel.close)


def _pump(call: Any, send: trio.MemorySendChannel[Any]) -> None:
    """Runs in a thread: every message into the channel (blocking when it is full)."""
    error: BaseException | None = None
    try:
        for msg in call:
            trio.from_thread.run(send.send, msg)
    except (trio.BrokenResourceError, trio.Cancelled, trio.RunFinishedError):
        call.cancel()
        return
    except grpc.RpcError as exc:
        error = exc
    try:
        trio.from_thread.run(send.send, _End(error))
    except (trio.BrokenResourceError, trio.Cancelled, trio.RunFinishedError):
        pass


class _Messages:
    def __init__(self, recv: trio.MemoryReceiveChannel[Any], address: str) -> None:
        self._recv, self._address = recv, address

    def __aiter__(self) -> "_Messages":
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _End):
            if item.error is not None:
                raise map_rpc_error(item.error, self._address, "ExecuteStream")
            raise StopAsyncIteration
        return item
