"""The worker's pipe transport: Frames (bridge.proto) over the socketpair fd the host gave it.

The same ToolDispatcher and WorkerServicer methods as the gRPC server; only the carriage
differs: a 4-byte little-endian length, then a serialized Frame. Requests run as tasks keyed by
frame id (Cancel cancels the task); stream chunks are sent within the credit the host grants.
The worker's calls into the host (:class:`PipeHostClient`) and its telemetry events travel on
the same pipe. A frame that does not parse ends the connection: the peer is not speaking the
protocol, and the worker stops as if the host were gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import socket
import threading
from typing import Any

from google.protobuf.message import DecodeError

from snakepit_bridge import frames, shm, telemetry
from snakepit_bridge.context import HostToolError
from snakepit_bridge.frames import HEADER, HOST_CALLS, MAX_FRAME
from snakepit_bridge.proto import bridge_pb2 as pb

log = logging.getLogger("snakepit_bridge.pipe")

HOST_REPLIES = frozenset(reply for _, reply in HOST_CALLS.values()) | {"error"}


class PipeServer:
    def __init__(self, fd: int, worker_id: str) -> None:
        self.sock = socket.socket(fileno=fd)
        self.worker_id = worker_id
        self.servicer: Any = None
        self.dispatcher: Any = None
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.credits: dict[int, list[Any]] = {}   # id -> [available, asyncio.Event]
        self.writer: asyncio.StreamWriter | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.host = PipeHostClient(self)
        self.segments = shm.Segments(os.environ.get(shm.PREFIX_ENV, ""), f"w{os.getpid()}")
        self._telemetry: asyncio.Task[Any] | None = None

    def attach(self, servicer: Any, dispatcher: Any) -> None:
        self.servicer, self.dispatcher = servicer, dispatcher

    def send(self, fid: int, kind: str, message: Any) -> None:
        """Queue ``Frame(id=fid, <kind>=message)`` (event-loop thread only). Large blobs go by
        shared memory; the host unlinks each segment as it reads it, and sweeps what we leave
        when we exit."""
        if self.writer is None or self.writer.is_closing():
            raise ConnectionError("the pipe to the host is closed")
        if kind in shm.BLOB_KINDS:
            self.segments.export(message)
        self.writer.writelines(frames.encode(fid, kind, message))

    async def connect(self) -> asyncio.StreamReader:
        self.loop = asyncio.get_running_loop()
        reader, self.writer = await asyncio.open_connection(sock=self.sock,
                                                            limit=MAX_FRAME + 16)
        return reader

    async def serve(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                if size > MAX_FRAME:
                    log.error("frame of %d bytes exceeds the %d limit: closing the pipe",
                              size, MAX_FRAME)
                    return
                try:
                    frame = pb.Frame.FromString(await reader.readexactly(size))
                except DecodeError as exc:
                    log.error("malformed frame from the host (%s): closing the pipe", exc)
                    return
                self.handle(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            return   # the host closed its end: it is gone
        finally:
            for task in self.tasks.values():
                task.cancel()
            if self._telemetry is not None:
                self._telemetry.cancel()
            self.host.fail_all("the pipe to the host closed")
            if self.writer is not None:
                self.writer.close()

    def handle(self, frame: pb.Frame) -> None:
        kind = frame.WhichOneof("body")
        fid = frame.id
        s = self.servicer
        if kind in HOST_REPLIES:
            self.host.resolve(fid, kind, frame)
        elif kind == "heartbeat":
            self.send(fid, "heartbeat_reply", s._heartbeat(frame.heartbeat))
        elif kind == "ping":
            self.send(fid, "pong", s._ping(frame.ping))
        elif kind == "describe":
            self.send(fid, "description", s._describe())
        elif kind == "execute":
            self._spawn(fid, self._execute(fid, frame.execute))
        elif kind == "execute_stream":
            self.credits[fid] = [0, asyncio.Event()]
            self._spawn(fid, self._stream(fid, frame.execute_stream))
        elif kind == "credit":
            entry = self.credits.get(fid)
            if entry is not None:
                entry[0] += frame.credit.chunks
                entry[1].set()
        elif kind == "cancel":
            task = self.tasks.get(fid)
            if task is not None:
                task.cancel()
        elif kind == "init_session":
            self._spawn(fid, self._session(fid, frame.init_session, True))
        elif kind == "end_session":
            self._spawn(fid, self._session(fid, frame.end_session, False))
        elif kind == "telemetry_control":
            self._configure_telemetry(frame.telemetry_control)
        else:
            self.send(fid, "error", pb.ErrorInfo(
                category="internal", type="BadFrame", message=f"unexpected frame {kind!r}"))

    def _spawn(self, fid: int, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks[fid] = task
        task.add_done_callback(lambda _: self.tasks.pop(fid, None))

    async def _execute(self, fid: int, request: pb.ExecuteRequest) -> None:
        self.send(fid, "result", await self.dispatcher.execute(request))

    async def _stream(self, fid: int, request: pb.ExecuteRequest) -> None:
        credit = self.credits[fid]
        gen = self.dispatcher.stream(request)
        try:
            async for chunk in gen:
                while credit[0] <= 0:
                    credit[1].clear()
                    await credit[1].wait()
                credit[0] -= 1
                self.send(fid, "chunk", chunk)
                assert self.writer is not None
                await self.writer.drain()
        finally:
            await gen.aclose()
            self.credits.pop(fid, None)

    async def _session(self, fid: int, request: Any, init: bool) -> None:
        if init:
            created = await self.dispatcher.init_session(
                request.session_id, None)
            self.send(fid, "session_initialized", pb.InitSessionResponse(
                created=created))
        else:
            existed = await self.dispatcher.end_session(request.session_id)
            self.send(fid, "session_ended", pb.EndSessionResponse(existed=existed))

    # -- telemetry ---------------------------------------------------------------------------
    def _configure_telemetry(self, control: pb.TelemetryControl) -> None:
        from snakepit_bridge.server import apply_telemetry_control
        apply_telemetry_control(control)
        if self._telemetry is None:
            self._telemetry = asyncio.ensure_future(self._forward_telemetry())

    async def _forward_telemetry(self) -> None:
        from snakepit_bridge.server import telemetry_messages
        assert self.loop is not None
        loop, wake = self.loop, asyncio.Event()
        telemetry.buffer.waker = lambda: loop.call_soon_threadsafe(wake.set)
        try:
            while True:
                wake.clear()
                for event in telemetry_messages(self.worker_id):
                    self.send(0, "telemetry_event", event)
                if not telemetry.buffer.events:
                    await wake.wait()
        except ConnectionError:
            pass
        finally:
            telemetry.buffer.waker = None


class PipeHostClient:
    """The worker's calls into the host over the pipe (the HostClient interface).

    ``call`` blocks its thread until the host answers, so it is for tool threads (sync tools,
    ``acall_host_tool``); on the event-loop thread it would wait on itself and raises instead.
    """

    address = ""   # no gRPC probe: the pipe's EOF says the host is gone

    def __init__(self, server: PipeServer) -> None:
        self._server = server
        self.worker_id = server.worker_id
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, concurrent.futures.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._closed: str | None = None

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        if method not in HOST_CALLS:
            raise HostToolError("host", "Unsupported", f"{method} is not a host call over "
                                f"the pipe transport (have: {sorted(HOST_CALLS)})")
        loop = self._server.loop
        if loop is None:
            raise HostToolError("host", "NoHost", "the pipe to the host is not connected")
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            raise HostToolError("host", "WouldBlock", f"{method} blocks until the host answers, "
                                "so it cannot run on the worker's event loop: call it from a "
                                "sync tool, or use `await ctx.acall_host_tool(...)` in an "
                                "async tool")
        kind, reply = HOST_CALLS[method]
        fid = next(self._ids)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise HostToolError("host", "HostGone", self._closed)
            self._pending[fid] = (reply, future)
        try:
            loop.call_soon_threadsafe(self._send, fid, kind, request)
        except RuntimeError:   # the loop has finished: the worker is stopping
            with self._lock:
                self._pending.pop(fid, None)
            raise HostToolError("host", "HostGone", "the worker is stopping") from None
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise HostToolError("host", "DEADLINE_EXCEEDED",
                                f"{method} got no answer within {timeout} s") from None
        finally:
            with self._lock:
                self._pending.pop(fid, None)

    def _send(self, fid: int, kind: str, request: Any) -> None:
        try:
            self._server.send(fid, kind, request)
        except ConnectionError as exc:
            self._settle(fid, exc=HostToolError("host", "HostGone", str(exc)))

    def resolve(self, fid: int, kind: str, frame: pb.Frame) -> None:
        with self._lock:
            entry = self._pending.get(fid)
        if entry is None:   # the caller gave up (timeout)
            if kind != "error":
                shm.discard(getattr(frame, kind))
            return
        expected, _ = entry
        if kind == "error":
            self._settle(fid, exc=HostToolError(frame.error.category, frame.error.type,
                                                frame.error.message))
        elif kind != expected:
            self._settle(fid, exc=HostToolError("internal", "BadFrame",
                                                f"expected {expected!r}, got {kind!r}"))
        else:
            self._settle(fid, value=getattr(frame, kind))

    def _settle(self, fid: int, *, value: Any = None, exc: BaseException | None = None) -> None:
        with self._lock:
            entry = self._pending.pop(fid, None)
        if entry is None or entry[1].done():
            return
        if exc is not None:
            entry[1].set_exception(exc)
        else:
            entry[1].set_result(value)

    def fail_all(self, why: str) -> None:
        with self._lock:
            self._closed = why
            pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(HostToolError("host", "HostGone", why))
