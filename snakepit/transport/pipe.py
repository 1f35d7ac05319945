"""PipeTransport: bridge.proto Frames over a socketpair to a local worker (``transport="pipe"``).

One reader task routes replies by frame id. A frame is written by its caller straight into the
socket when nothing is queued before it (most calls: no task switch); otherwise one writer task
merges the queued frames into single writes. A call registers a slot and parks its task until
the reader hands it the reply; its deadline is an entry in the run's ``Deadlines`` — no task, no
thread, no lock and no cancel scope per request.
Streams flow within a credit window the host grants (counted in chunks, however many a frame
carries), so a slow consumer holds the worker back. The window starts at ``WINDOW`` chunks and
follows their size: about ``WINDOW_BYTES`` of them, between ``WINDOW`` and ``MAX_WINDOW``
chunks (small chunks flow in long runs, large ones a few at a time).
The worker's own calls into the host (host tools, session data) arrive on the same pipe and are
answered by the host handler, each in a task; its telemetry events arrive as frames too.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import outcome
import trio

from snakepit.errors import DeadlinePassed, TransportError, WorkerCrashed
from snakepit.chunk import plain_chunks
from snakepit.transport.base import TIMEOUTS, PackedResults, backstop
from snakepit.deadlines import run_deadlines
from snakepit_bridge import frames, serialization, shm
from snakepit_bridge.frames import HEADER, HOST_CALLS, MAX_FRAME
from snakepit_bridge.proto import bridge_pb2 as pb

WINDOW = 64          # stream chunks in flight at first, and at least
MAX_WINDOW = 1024    # ... and at most
WINDOW_BYTES = 1 << 20   # the window aims at about this many bytes of chunks in flight
TELEMETRY_BUFFER = 1000
_transports = itertools.count(1)
# worker -> host request kind -> reply kind; the handler's method has the request's name
HOST_REQUESTS = dict(HOST_CALLS.values())
# host -> worker request kind -> the reply kind that answers it
REPLIES = {"ping": "pong", "heartbeat": "heartbeat_reply", "describe": "description",
           "execute": "result", "execute_batch": "results",
           "init_session": "session_initialized",
           "end_session": "session_ended"}


_CHUNK_KINDS = frozenset({"chunk", "chunks"})
_INNER_BLOBS = frozenset({"chunks", "results"})   # messages whose items may name segments
# a frame body at least this big goes through the writer task, never joined into a copy here
_DIRECT = 64 * 1024


def _chunks_of(frame: pb.Frame) -> Any:
    """The stream chunks a frame carries: a ``chunks`` batch, a lone ``chunk``, or none."""
    kind = frame.WhichOneof("body")
    return frame.chunks.chunks if kind == "chunks" else [frame.chunk] if kind == "chunk" else []


def _array(packed: bytes, what: str) -> list[Any]:
    """The JSON array of a packed message, or TransportError naming ``what`` it is."""
    try:
        values = serialization.decode(packed)
    except ValueError as exc:
        raise TransportError(f"{what} does not decode: {exc}") from None
    if not isinstance(values, list):
        raise TransportError(f"{what} holds {type(values).__name__}, not a JSON array")
    return values


def _after(seconds: float) -> float:
    return trio.current_time() + seconds


def _earliest(timeout: float | None, deadline: float | None) -> float | None:
    """The deadline of a call with ``timeout`` seconds and/or an absolute ``deadline``."""
    if timeout is None:
        return deadline
    return min(_after(timeout), math.inf if deadline is None else deadline)


def _discard(frame: pb.Frame, peer: str) -> None:
    """Remove the segments of a frame's chunks nobody will read (only the worker's own)."""
    for chunk in _chunks_of(frame):
        shm.discard(chunk, peer)


class _Slot:
    """A call waiting for its reply: the reader reschedules ``task`` with the frame (None: the
    pipe broke; ``_EXPIRED``: its deadline passed). Cheaper than an Event and a cancel scope:
    nothing to park on, no second wake-up, the deadline a heap entry (``Deadlines``)."""
    __slots__ = ("task", "fid", "slots")

    def __init__(self, fid: int, slots: dict[int, "_Slot"]) -> None:
        self.task = trio.lowlevel.current_task()
        self.fid, self.slots = fid, slots

    def fill(self, frame: pb.Frame | None) -> None:
        trio.lowlevel.reschedule(self.task, outcome.Value(frame))

    def expire(self) -> None:
        if self.slots.pop(self.fid, None) is self:
            self.fill(_EXPIRED)


_EXPIRED = pb.Frame()


def _abort(raise_cancel: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.SUCCEEDED   # the caller takes its slot back itself


class PipeTransport:
    def __init__(self, sock: Any, name: str, handler: Any = None, *, shm_prefix: str = "",
                 worker_pid: int | None = None) -> None:
        self.name = name
        self._shm_prefix, self._worker_pid = shm_prefix, worker_pid
        # The only segments the worker may name: its own (a buggy peer must not make us map,
        # then unlink, another worker's or another run's). Empty: none.
        self._peer = f"{shm.peer_prefix(shm_prefix, f'w{worker_pid}')}-" \
            if shm_prefix and worker_pid is not None else ""
        self._segments = shm.Segments(shm_prefix, f"h{os.getpid()}.{next(_transports)}")
        self._handler = handler
        self._nursery: trio.Nursery | None = None
        self._telemetry: trio.MemorySendChannel[Any] | None = None
        self._sock = sock     # non-blocking: trio made it so
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._writing = False   # the writer task holds frames it has taken from _out
        self._ids = itertools.count(1)
        self._slots: dict[int, _Slot] = {}
        self._deadlines = run_deadlines()
        self._streams: dict[int, trio.MemorySendChannel[Any]] = {}
        self._out: list[bytes] = []
        self._wake = trio.Event()
        self._closed = False
        self._error: str | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        nursery.start_soon(self._reader)
        nursery.start_soon(self._writer)

    # -- carriage ---------------------------------------------------------------------------
    def _send(self, fid: int, kind: str, message: Any) -> list[str]:
        """Queue ``Frame(id=fid, <kind>=message)``; returns the shared-memory segments its large
        blobs went into (they leave ``message``: a request is the transport's to consume)."""
        if self._closed:
            raise WorkerCrashed(f"pipe to {self.name} is closed ({self._error or 'closed'})")
        names: list[str] = []
        try:
            names = self._segments.export(message) if kind in shm.BLOB_KINDS else \
                [n for item in message.requests if item.blobs
                 for n in self._segments.export(item)] if kind == "execute_batch" else []
            head, body = frames.encode(fid, kind, message)
        except (OSError, ValueError) as exc:   # /dev/shm full, a frame over the limit
            for name in names:
                shm.unlink(name)
            raise TransportError(f"{kind!r} to {self.name} cannot be sent: {exc}",
                                 details={"kind": kind, "reason": str(exc)}) from None
        if not self._out and not self._writing and len(body) < _DIRECT:
            # Nothing queued before it: straight into the socket, no task switch.
            data = head + body
            try:
                sent = self._sock.send(data)
            except OSError:   # full (BlockingIOError), or broken: the writer finds out which
                sent = 0
            if sent == len(data):
                return names
            self._out.append(data[sent:])
        else:
            self._out += (head, body)
        self._wake.set()
        return names

    async def _writer(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._out:
                    batch, self._out = b"".join(self._out), []
                    self._writing = True
                    try:
                        await self._stream.send_all(batch)
                    finally:
                        self._writing = False
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._fail(f"write failed: {exc!r}")

    async def _reader(self) -> None:
        # Waits, then reads the socket itself (not SocketStream.receive_some, which first
        # tries a read that finds nothing after every reply: a system call per call).
        sock = self._sock
        buf = bytearray()
        need = HEADER.size   # bytes of the frame being read (a receive buffer is this big)
        try:
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    data = sock.recv(max(1 << 16, min(need - len(buf), 1 << 24)))
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._fail(f"read failed: {exc!r}")
                    return
                if not data:
                    break
                buf += data
                while len(buf) >= HEADER.size:
                    (size,) = HEADER.unpack_from(buf)
                    if size > MAX_FRAME:
                        raise TransportError(f"{self.name} sent a {size}-byte frame")
                    need = HEADER.size + size
                    if len(buf) < need:
                        break
                    need = HEADER.size
                    with memoryview(buf) as view:
                        frame = pb.Frame.FromString(view[HEADER.size:HEADER.size + size])
                    del buf[:HEADER.size + size]
                    self._route(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception as exc:  # a malformed frame: the worker is not speaking the protocol
            self._fail(f"protocol error: {exc!r}")
            return
        self._fail("the worker closed its end")

    def _route(self, frame: pb.Frame) -> None:
        kind = frame.WhichOneof("body")
        if kind is None:   # no body we know: the peer does not speak this protocol
            raise TransportError(f"{self.name} sent frame {frame.id} without a known body")
        if (kind in shm.BLOB_KINDS and getattr(frame, kind).blobs) or kind in _INNER_BLOBS:
            try:
                for message in _chunks_of(frame) if kind in _CHUNK_KINDS else \
                        frame.results.responses if kind == "results" else [getattr(frame, kind)]:
                    shm.check_peer(message, self._peer)
            except shm.SegmentError as exc:
                refused = pb.ErrorInfo(category="worker", type="ForeignSegment",
                                       message=str(exc))
                if kind in HOST_REQUESTS:
                    self._send(frame.id, "error", refused)
                    return
                frame, kind = pb.Frame(id=frame.id, error=refused), "error"
        if kind in _CHUNK_KINDS or (kind == "error" and frame.id in self._streams):
            channel = self._streams.get(frame.id)
            try:
                if channel is None:
                    raise trio.BrokenResourceError
                channel.send_nowait(frame)
            except (trio.WouldBlock, trio.BrokenResourceError):
                _discard(frame, self._peer)   # past the credit window, or the consumer left
            return
        if kind in HOST_REQUESTS:
            assert self._nursery is not None
            self._nursery.start_soon(self._answer, frame, kind)
            return
        if kind == "telemetry_event":
            if self._telemetry is not None:
                try:
                    self._telemetry.send_nowait(frame.telemetry_event)
                except (trio.WouldBlock, trio.BrokenResourceError):
                    pass   # a slow consumer loses events, never stalls the pipe
            return
        slot = self._slots.pop(frame.id, None)
        if slot is not None:
            slot.fill(frame)
        elif kind in shm.BLOB_KINDS:
            shm.discard(getattr(frame, kind), self._peer)   # its caller gave up
        elif kind == "results":
            for response in frame.results.responses:
                shm.discard(response, self._peer)

    def _fail(self, why: str) -> None:
        if self._closed:
            return
        self._closed, self._error = True, why
        for slot in self._slots.values():
            slot.fill(None)    # the caller raises WorkerCrashed
        self._slots.clear()
        for channel in self._streams.values():
            channel.close()
        self._wake.set()

    async def _answer(self, frame: pb.Frame, kind: str) -> None:
        """A worker's call into the host: the handler's reply, under the request's id."""
        reply_kind = HOST_REQUESTS[kind]
        if self._handler is None:
            reply_kind, answer = "error", pb.ErrorInfo(
                category="host", type="NoHost", message="this pool has no host services")
        else:
            try:
                answer = await getattr(self._handler, kind)(getattr(frame, kind))
            except Exception as exc:  # the handler answers errors itself; this is a bug
                reply_kind, answer = "error", pb.ErrorInfo(
                    category="host", type=type(exc).__name__, message=str(exc))
        if not self._closed:
            try:
                self._send(frame.id, reply_kind, answer)
            except TransportError as exc:   # too big for a frame, /dev/shm full
                self._send(frame.id, "error", pb.ErrorInfo(
                    category="host", type="Unsendable", message=exc.message))

    # -- calls ------------------------------------------------------------------------------
    async def _call(self, what: str, deadline: float | None, kind: str, message: Any
                    ) -> pb.Frame:
        """Send ``message`` and wait for its reply. At ``deadline`` (trio time) the worker is
        told to cancel and the call raises :class:`DeadlinePassed`."""
        fid = next(self._ids)
        slot = self._slots[fid] = _Slot(fid, self._slots)
        entry = None if deadline is None else self._deadlines.add(deadline, slot.expire)
        names: list[str] = []
        try:
            names = self._send(fid, kind, message)
            frame: pb.Frame | None = await trio.lowlevel.wait_task_rescheduled(_abort)
        except BaseException:
            if self._slots.pop(fid, None) is not None and not self._closed:
                self._send(fid, "cancel", pb.Cancel())
            raise
        finally:
            if entry is not None:
                self._deadlines.drop(entry)
            for name in names:   # read and unlinked by the worker, unless it never got there
                shm.unlink(name)
        if frame is _EXPIRED:
            if not self._closed:
                self._send(fid, "cancel", pb.Cancel())
            raise DeadlinePassed(f"{what} to {self.name} exceeded its deadline")
        if frame is None:
            raise WorkerCrashed(f"{what} to {self.name} failed: {self._error}")
        answered = frame.WhichOneof("body")
        if answered == "error":
            raise TransportError(f"{what} to {self.name}: {frame.error.message}")
        if answered != REPLIES[kind]:
            raise TransportError(f"{what} to {self.name} was answered with a {answered!r} "
                                 f"frame, not {REPLIES[kind]!r}")
        return frame

    async def ping(self) -> Any:
        return (await self._call("Ping", _after(TIMEOUTS["ping"]), "ping",
                                 pb.PingRequest(message="ping"))).pong

    async def heartbeat(self, seq: int) -> Any:
        return (await self._call("Heartbeat", None, "heartbeat", pb.HeartbeatRequest(seq=seq))
                ).heartbeat_reply

    async def describe(self) -> Any:
        return (await self._call("Describe", _after(TIMEOUTS["describe"]), "describe",
                                 pb.DescribeRequest())).description

    async def execute(self, request: Any, *, timeout: float | None = None,
                      deadline: float | None = None) -> Any:
        return (await self._call("Execute", _earliest(backstop(timeout), deadline), "execute",
                                 request)).result

    async def execute_batch(self, batch: Any, *, timeout: float | None = None,
                            deadline: float | None = None) -> Any:
        """Several calls of one tool in one frame (``ExecuteBatch``): the responses, in order,
        fewer than the items when one timed out (the rest never ran). Large blobs of the items
        and of the responses go by shared memory, as in ``execute``."""
        results = (await self._call("ExecuteBatch", _earliest(backstop(timeout), deadline),
                                    "execute_batch", batch)).results
        if not results.packed_json:
            return results.responses
        return PackedResults(_array(results.packed_json, f"{self.name}'s packed results"))

    async def init_session(self, session_id: str, metadata_json: bytes = b"") -> Any:
        return (await self._call("InitSession", _after(TIMEOUTS["init_session"]), "init_session",
                                 pb.InitSessionRequest(
            session_id=session_id, metadata_json=metadata_json))).session_initialized

    async def end_session(self, session_id: str) -> Any:
        return (await self._call("EndSession", _after(TIMEOUTS["end_session"]), "end_session",
                                 pb.EndSessionRequest(
            session_id=session_id))).session_ended

    @asynccontextmanager
    async def stream(self, request: Any) -> AsyncIterator[AsyncIterator[Any]]:
        fid = next(self._ids)
        send, recv = trio.open_memory_channel[Any](MAX_WINDOW)   # a frame holds >= 1 chunk
        self._streams[fid] = send
        names: list[str] = []
        chunks: _Chunks | None = None
        try:
            names = self._send(fid, "execute_stream", request)
            self._send(fid, "credit", pb.Credit(chunks=WINDOW))
            chunks = _Chunks(self, fid, recv)
            yield chunks
        finally:
            for name in names:
                shm.unlink(name)
            self._streams.pop(fid, None)
            if not self._closed:
                self._send(fid, "cancel", pb.Cancel())
            send.close()
            if chunks is not None:
                chunks.discard_unread()

    @asynccontextmanager
    async def telemetry(self, control: Any) -> AsyncIterator["PipeTelemetry"]:
        """The worker's event stream; ``send(control)`` changes its filters at run time."""
        send, recv = trio.open_memory_channel[Any](TELEMETRY_BUFFER)
        self._telemetry = send
        try:
            stream = PipeTelemetry(self, recv)
            stream.send(control)
            yield stream
        finally:
            if self._telemetry is send:
                self._telemetry = None
            send.close()

    async def aclose(self) -> None:
        self._fail("closed by the host")
        await self._stream.aclose()
        # Segments nobody will read now: the worker's (it has exited) and ours to it.
        if self._shm_prefix:
            if self._worker_pid is not None:
                shm.sweep(f"{self._shm_prefix}-w{self._worker_pid}-")
            shm.sweep(self._segments.prefix)


class _Chunks:
    """A stream's chunks, in order. A ``chunks`` frame's chunks are handed out one by one from
    the frame, without waiting on the channel (no task switch per chunk); a packed one's are
    decoded together, as :class:`~snakepit.chunk.Chunk`. The credit the worker gets back follows the
    chunks' size (the module docstring)."""

    def __init__(self, transport: PipeTransport, fid: int,
                 recv: trio.MemoryReceiveChannel[Any]) -> None:
        self._t, self._fid, self._recv = transport, fid, recv
        self._batch: collections.deque[Any] = collections.deque()
        self._taken = 0
        self._ended = False
        self._window = WINDOW   # chunks granted and not yet taken
        self._received = self._bytes = 0   # chunks received since the last refill, their bytes

    def _unpack(self, frame: Any) -> Any:
        """The chunks of a frame (its size counted for the window)."""
        kind = frame.WhichOneof("body")
        body = frame.chunks if kind == "chunks" else frame.chunk
        self._bytes += body.ByteSize()
        if kind != "chunks" or not body.packed_json:
            chunks = _chunks_of(frame)
            self._received += len(chunks)
            # a blob in shared memory is a name in the frame: its bytes count all the same
            self._bytes += sum(blob.shm_size for chunk in chunks if chunk.blobs
                               for blob in chunk.blobs.values())
            return chunks
        values = _array(body.packed_json, f"stream from {self._t.name}: a packed chunks frame")
        self._received += len(values)
        return plain_chunks(body.first_chunk_id, values)

    def _refill(self) -> None:
        """Give the worker back the credit taken, the window resized to about WINDOW_BYTES
        of chunks the size of the latest ones."""
        average = self._bytes / self._received if self._received else WINDOW_BYTES / WINDOW
        target = min(MAX_WINDOW, max(WINDOW, int(WINDOW_BYTES / max(average, 1))))
        grant = max(0, self._taken + target - self._window)
        self._window += grant - self._taken
        self._taken = self._received = self._bytes = 0
        if grant:
            self._t._send(self._fid, "credit", pb.Credit(chunks=grant))

    def __aiter__(self) -> "_Chunks":
        return self

    async def __anext__(self) -> Any:
        if self._ended:   # the final chunk ends the stream, as a completed gRPC stream does
            raise StopAsyncIteration
        if not self._batch:
            try:
                frame = await self._recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                if self._t._closed:
                    raise WorkerCrashed(f"stream from {self._t.name} broke: "
                                        f"{self._t._error}") from None
                raise StopAsyncIteration from None
            if frame.WhichOneof("body") == "error":
                raise TransportError(f"stream from {self._t.name}: {frame.error.message}")
            self._batch.extend(self._unpack(frame))
            if not self._batch:
                raise TransportError(f"stream from {self._t.name}: an empty chunks frame")
        chunk = self._batch.popleft()
        self._taken += 1
        self._ended = chunk.is_final
        if self._taken >= self._window // 2 and not chunk.is_final:
            self._refill()
        return chunk

    def discard_unread(self) -> None:
        """Remove the shared-memory segments of chunks nobody will read (the caller left)."""
        for chunk in self._batch:
            shm.discard(chunk, self._t._peer)
        self._batch.clear()
        while True:
            try:
                _discard(self._recv.receive_nowait(), self._t._peer)
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return


class PipeTelemetry:
    """``events``: the worker's TelemetryEvents; ``send(control)``: new filters."""

    def __init__(self, transport: PipeTransport, recv: trio.MemoryReceiveChannel[Any]) -> None:
        self._t, self.events = transport, recv

    def send(self, control: Any) -> None:
        if not self._t._closed:
            self._t._send(0, "telemetry_control", control)
