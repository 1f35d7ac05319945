"""The pipe carrier: Frames (bridge.proto) over the socketpair fd the host gave the worker.

    carrier = PipeServer(pipe_fd, worker_id)
    port = await carrier.start(core, lifetime)    # 0: a pipe worker has no port
    await carrier.stop(grace=5.0)

Each frame is a 4-byte little-endian length, then a serialized Frame; each request is one call
into :class:`~snakepit_bridge.core.WorkerCore`. A reader thread reads the pipe (blocking): it
answers pings and heartbeats itself, hands requests for sync unary tools and sync generator
streams to tool threads (:class:`~snakepit_bridge.inline.InlineRunner`: no event loop on that
path; a stream's plain chunks leave packed, many to a frame), resolves the answers to the
worker's own host calls, and passes every other frame to the asyncio loop, where requests run
as tasks keyed by frame id (Cancel cancels the task; an id already in flight is refused). Any
thread writes a whole frame at a time under one lock. Stream chunks are pulled within the
credit the host grants, and the chunks that are ready when the sender runs leave together in
one frame. The worker's calls into the host (:class:`PipeHostClient`) and its telemetry events
travel on the same pipe. A frame that does not parse ends the connection: the peer is not
speaking the protocol, and the worker stops as if the host were gone. Every request is
answered, with an error frame when it cannot be served, and a frame may name only the host's
own shared-memory segments: anything else is refused and left alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import itertools
import logging
import os
import socket
import threading
from typing import Any, Coroutine, Sequence

from google.protobuf.message import DecodeError

from snakepit_bridge import frames, serialization, shm
from snakepit_bridge.context import HostCaller, HostToolError
from snakepit_bridge.core import WorkerCore
from snakepit_bridge.dispatch import error_info
from snakepit_bridge.frames import HEADER, HOST_CALLS
from snakepit_bridge.inline import InlineRunner
from snakepit_bridge.lifetime import Lifetime
from snakepit_bridge.outbox import Run
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.protocol import MAX_FRAME, SHM_PREFIX_ENV, MessageTooLarge

log = logging.getLogger("snakepit_bridge.pipe")

HOST_REPLIES = frozenset(reply for _, reply in HOST_CALLS.values()) | {"error"}
# request kinds answered by a task of their own (their id is in flight until answered)
_TASK_KINDS = frozenset({"execute", "execute_stream", "execute_batch", "init_session",
                         "end_session"})
# the most chunk bytes one `chunks` frame carries: larger batches stop paying for themselves
# (the per-frame cost is already spread thin) and only delay the host's first chunk
BATCH_BYTES = 64 * 1024


class _Credit:
    """How many chunks of one stream the host will take now."""

    def __init__(self) -> None:
        self.available = 0
        self.granted = asyncio.Event()


class _Batch:
    """Chunks of one stream pulled and not yet sent (at most the host's credit)."""

    def __init__(self) -> None:
        self.chunks: list[pb.ToolChunk] = []
        self.sizes: list[int] = []
        self.ready = asyncio.Event()

    def add(self, chunk: pb.ToolChunk) -> None:
        self.chunks.append(chunk)
        self.sizes.append(chunk.ByteSize())
        self.ready.set()

    def take(self) -> list[pb.ToolChunk]:
        """The oldest chunks that fit in ``BATCH_BYTES`` together (always at least one)."""
        n, total = 1, self.sizes[0]
        while n < len(self.sizes) and total + self.sizes[n] <= BATCH_BYTES:
            total += self.sizes[n]
            n += 1
        taken = self.chunks[:n]
        del self.chunks[:n], self.sizes[:n]
        return taken


class PipeServer:
    """Serves a :class:`WorkerCore` over the pipe; see the module docstring."""

    transport = "pipe"

    def __init__(self, fd: int, worker_id: str) -> None:
        self.sock = socket.socket(fileno=fd)
        self.worker_id = worker_id
        self.core: WorkerCore | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.credits: dict[int, _Credit] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inline: InlineRunner | None = None
        self._packed: set[int] = set()   # packed batches in flight: their answer is packed
        self._write_lock = threading.Lock()
        self._closed: str | None = None     # why the pipe is closed, once it is
        self._host = PipeHostClient(self)
        prefix = os.environ.get(SHM_PREFIX_ENV, "")
        self.segments = shm.Segments(prefix, f"w{os.getpid()}")
        # what the host names its segments (snakepit.transport.pipe: side "h<pid>.<n>")
        self.peer_prefix = shm.peer_prefix(prefix, "h")
        self._telemetry: asyncio.Task[None] | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def host(self) -> HostCaller:
        return self._host

    # -- Carrier ---------------------------------------------------------------------------
    async def start(self, core: WorkerCore, lifetime: Lifetime) -> int:
        self.core = core
        if self.segments.enabled:   # results written straight into segments (serialization)
            serialization.LARGE.set(self.segments)
        loop = self.loop = asyncio.get_running_loop()
        # tool threads run in (a copy of) this context: they see LARGE
        self.inline = InlineRunner(core.dispatcher, self._answer, self.failed,
                                   self._send_stream, threads=core.capacity,
                                   context=contextvars.copy_context())
        self.sock.setblocking(True)
        ended: asyncio.Future[None] = loop.create_future()

        def end() -> None:
            if not ended.done():   # cancelled by stop()
                ended.set_result(None)

        def read() -> None:
            try:
                self._read()
            finally:
                with contextlib.suppress(RuntimeError):   # the loop has already finished
                    loop.call_soon_threadsafe(end)

        async def serve_then_stop() -> None:
            try:
                await ended
            finally:
                self._finished()
            lifetime.host_lost("pipe closed: the host is gone")
        threading.Thread(target=read, name="snakepit-pipe-reader", daemon=True).start()
        self._serving = asyncio.ensure_future(serve_then_stop())
        return 0

    async def stop(self, grace: float) -> None:
        pending = [t for t in self.tasks.values() if not t.done()]
        waits: list[Any] = [asyncio.wait(pending, timeout=grace)] if pending else []
        if self.inline is not None and self.inline.jobs:
            waits.append(asyncio.to_thread(self.inline.wait_idle, grace))
        if waits and grace > 0:
            await asyncio.gather(*waits)
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving

    # -- framing ---------------------------------------------------------------------------
    def send(self, fid: int, kind: str, message: Any) -> None:
        """Write ``Frame(id=fid, <kind>=message)`` (any thread; it blocks while the pipe is
        full). Large blobs go by shared memory; the host unlinks each segment as it reads it,
        and sweeps what we leave when we exit."""
        if kind in shm.BLOB_KINDS:
            self.segments.export(message)
            carriers = [message]
        elif kind == "results":
            if fid in self._packed:
                self._packed.discard(fid)
                message = _packed_results(message)
            carriers = list(message.responses)
            for response in carriers:
                self.segments.export(response)
        else:
            carriers = []
        self._write(self._frame(fid, kind, message, carriers))

    def _frame(self, fid: int, kind: str, message: Any, carriers: list[Any]) -> list[bytes]:
        """``frames.encode``; a frame over the limit raises, and the segments its blobs went
        into (``carriers``: the messages with blobs) are removed, as nobody will read them."""
        try:
            return frames.encode(fid, kind, message)
        except MessageTooLarge:
            for carrier in carriers:
                shm.discard(carrier, self.segments.prefix)
            raise

    def _write(self, pieces: Sequence[bytes]) -> None:
        with self._write_lock:
            if self._closed is not None:
                raise ConnectionError(f"the pipe to the host is closed ({self._closed})")
            try:
                if len(pieces) == 2 and len(pieces[1]) < (64 << 10):
                    self.sock.sendall(pieces[0] + pieces[1])
                elif sum(map(len, pieces)) < (1 << 20):
                    self.sock.sendall(b"".join(pieces))
                else:
                    for piece in pieces:
                        self.sock.sendall(piece)
            except OSError as exc:
                self._closed = f"write failed: {exc!r}"
                raise ConnectionError(self._closed) from exc

    def send_error(self, fid: int, category: str, type_: str, message: str) -> None:
        self._packed.discard(fid)
        self.send(fid, "error", error_info(category, type_, message))

    def _answer(self, fid: int, kind: str, message: Any) -> None:
        self.send(fid, kind, message)

    def _read(self) -> None:
        """The reader thread: frames until the host closes its end or breaks the protocol."""
        buf = bytearray()
        need = HEADER.size
        try:
            while True:
                data = self.sock.recv(max(1 << 16, min(need - len(buf), 1 << 24)))
                if not data:
                    return   # the host closed its end: it is gone
                buf += data
                while len(buf) >= HEADER.size:
                    (size,) = HEADER.unpack_from(buf)
                    if size > MAX_FRAME:
                        log.error("frame of %d bytes exceeds the %d limit: closing the pipe",
                                  size, MAX_FRAME)
                        return
                    need = HEADER.size + size
                    if len(buf) < need:
                        break
                    try:
                        with memoryview(buf) as view:
                            frame = pb.Frame.FromString(view[HEADER.size:need])
                    except DecodeError as exc:
                        log.error("malformed frame from the host (%s): closing the pipe", exc)
                        return
                    del buf[:need]
                    need = HEADER.size
                    self._route(frame)
        except OSError:
            return   # closed under us (stop), or the host is gone
        finally:
            with self._write_lock:
                if self._closed is None:
                    self._closed = "the host closed the pipe"

    def _route(self, frame: pb.Frame) -> None:
        """(reader thread) Serve what needs no event loop; pass the rest to ``handle``."""
        kind = frame.WhichOneof("body")
        fid = frame.id
        core, inline, loop = self.core, self.inline, self.loop
        assert core is not None and inline is not None and loop is not None
        try:
            if kind == "execute" and core.dispatcher.inline(frame.execute.tool):
                if self._in_flight(fid, kind):
                    pass   # refused with an error frame
                elif frame.execute.blobs and not self._own_segments(fid, frame.execute):
                    pass   # refused with an error frame
                else:
                    inline.submit(fid, frame.execute)
            elif kind == "execute_stream" and \
                    core.dispatcher.inline_stream(frame.execute_stream.tool):
                if self._in_flight(fid, kind):
                    pass   # refused with an error frame
                elif not frame.execute_stream.blobs or \
                        self._own_segments(fid, frame.execute_stream):
                    inline.submit_stream(fid, frame.execute_stream)
            elif kind == "credit" and inline.credit(fid, frame.credit.chunks):
                pass
            elif kind == "execute_batch":
                batch = frame.execute_batch
                if self._in_flight(fid, kind):
                    return   # refused with an error frame
                args = self._unpack_batch(fid, batch) if batch.packed_args_json else None
                tool = batch.template.tool if args is not None else \
                    batch.requests[0].tool if batch.requests else ""
                if batch.packed_args_json and args is None:
                    pass   # refused with an error frame
                elif args is None and not self._batch_ok(fid, batch):
                    pass   # refused with an error frame
                elif core.dispatcher.inline(tool):
                    inline.submit_batch(fid, batch, args)
                else:
                    if args is not None:   # the loop runs requests: the items as such
                        self._expand(batch, args)
                    loop.call_soon_threadsafe(self.handle, frame)
            elif kind == "cancel" and inline.cancel(fid):
                self._packed.discard(fid)   # it gets no answer
            elif kind in HOST_REPLIES:
                self._host.resolve(fid, kind, frame)
            elif kind == "heartbeat":
                self.send(fid, "heartbeat_reply", core.heartbeat(frame.heartbeat))
            elif kind == "ping":
                self.send(fid, "pong", core.ping(frame.ping))
            else:
                loop.call_soon_threadsafe(self.handle, frame)
        except ConnectionError:
            pass   # the reader sees the end of the pipe next
        except RuntimeError:
            pass   # the event loop has finished: the worker is exiting

    def _unpack_batch(self, fid: int, batch: pb.ExecuteBatch) -> list[Any] | None:
        """A packed batch's items' arguments (its answer will be packed when every item
        succeeds); None (and an error frame sent) when they are not a JSON array of objects."""
        try:
            items = serialization.decode(batch.packed_args_json)
            if not isinstance(items, list) or not items or \
                    not all(type(item) is dict for item in items):
                raise ValueError("not a non-empty array of objects")
        except ValueError as exc:
            self.send_error(fid, "invalid_arguments", "BadBatch",
                            f"a packed batch's arguments must be a JSON array of objects: {exc}")
            return None
        self._packed.add(fid)
        return items

    @staticmethod
    def _expand(batch: pb.ExecuteBatch, args: list[Any]) -> None:
        """A packed batch's items as ``requests``: the template with each one's arguments."""
        template, dumps = batch.template, serialization.dumps
        for n, item in enumerate(args):
            batch.requests.add(tool=template.tool, args_json=dumps(item),
                               session_id=template.session_id,
                               correlation_id=template.correlation_id, timeout=template.timeout,
                               request_id=f"{batch.request_id}.{n}", metadata=template.metadata)

    def _in_flight(self, fid: int, kind: str) -> bool:
        """True (and a DuplicateId error frame sent) if request ``fid`` is already in flight."""
        if (self.inline is not None and fid in self.inline.jobs) or fid in self.tasks:
            # (not send_error: that would forget the packed form of the request in flight)
            self.send(fid, "error", error_info(
                "internal", "DuplicateId",
                f"frame id {fid} is already in flight: {kind!r} refused"))
            return True
        return False

    def _batch_ok(self, fid: int, batch: pb.ExecuteBatch) -> bool:
        """False (and an error frame sent) for a batch of requests we must refuse: no items,
        several tools, or a segment the host may not name."""
        tools = {request.tool for request in batch.requests}
        if len(tools) != 1:
            self.send_error(fid, "invalid_arguments", "BadBatch",
                            f"a batch names one tool in each of its 1 or more items, got "
                            f"{len(batch.requests)} items naming {sorted(tools)}")
        else:
            return all(self._own_segments(fid, r) for r in batch.requests if r.blobs)
        return False

    def _finished(self) -> None:
        """(loop) The pipe is closed: cancel what runs, fail the host calls waiting."""
        with self._write_lock:
            if self._closed is None:
                self._closed = "the worker is stopping"
        for task in self.tasks.values():
            task.cancel()
        if self._telemetry is not None:
            self._telemetry.cancel()
        self._host.fail_all("the pipe to the host closed")
        if self.inline is not None:
            self.inline.close()
        with contextlib.suppress(OSError):
            # the reader thread sees EOF (the fd itself is closed when the process exits:
            # closing it here could hand its number to another file under the reader)
            self.sock.shutdown(socket.SHUT_RDWR)

    def handle(self, frame: pb.Frame) -> None:
        kind = frame.WhichOneof("body")
        fid = frame.id
        core = self.core
        assert core is not None, "start() attaches the core before frames are read"
        if kind in _TASK_KINDS and self._in_flight(fid, kind):
            pass   # refused with an error frame
        elif kind in shm.BLOB_KINDS and not self._own_segments(fid, getattr(frame, kind)):
            pass   # refused with an error frame
        elif kind == "describe":
            self.send(fid, "description", core.describe())
        elif kind == "execute":
            self._spawn(fid, self._execute(fid, frame.execute))
        elif kind == "execute_batch":   # of a tool that runs on the loop (checked by _route)
            self._spawn(fid, self._batch(fid, frame.execute_batch))
        elif kind == "execute_stream":
            self.credits[fid] = _Credit()
            self._spawn(fid, self._stream(fid, frame.execute_stream))
        elif kind == "credit":
            credit = self.credits.get(fid)
            if credit is not None:
                credit.available += frame.credit.chunks
                credit.granted.set()
        elif kind == "cancel":
            task = self.tasks.get(fid)
            if task is not None:
                task.cancel()
        elif kind == "init_session":
            self._spawn(fid, self._reply(fid, "session_initialized",
                                         core.init_session(frame.init_session)))
        elif kind == "end_session":
            self._spawn(fid, self._reply(fid, "session_ended",
                                         core.end_session(frame.end_session)))
        elif kind == "telemetry_control":
            core.configure_telemetry(frame.telemetry_control)
            if self._telemetry is None:
                self._telemetry = asyncio.ensure_future(self._forward_telemetry(core))
        else:
            self.send_error(fid, "internal", "BadFrame", f"unexpected frame {kind!r}")

    def _own_segments(self, fid: int, message: Any) -> bool:
        """False (and an error frame sent) if the message names a segment the host may not."""
        try:
            shm.check_peer(message, self.peer_prefix)
        except shm.SegmentError as exc:
            self.send_error(fid, "invalid_arguments", "ForeignSegment", str(exc))
            return False
        return True

    def _spawn(self, fid: int, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(self._answered(fid, coro))
        self.tasks[fid] = task
        task.add_done_callback(lambda _: self.tasks.pop(fid, None))

    async def _answered(self, fid: int, coro: Coroutine[Any, Any, None]) -> None:
        """Run a request; whatever it raises becomes an error frame (never an unanswered id)."""
        try:
            await coro
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            self.failed(fid, exc)

    def failed(self, fid: int, exc: Exception) -> None:
        """Serving request ``fid`` raised (any thread): answer it with an error frame."""
        log.exception("request %d failed in the worker", fid, exc_info=exc)
        with contextlib.suppress(ConnectionError):
            self.send_error(fid, "internal", type(exc).__name__,
                            f"the worker failed to serve request {fid}: {exc}")

    async def _reply(self, fid: int, kind: str, answer: Coroutine[Any, Any, Any]) -> None:
        self.send(fid, kind, await answer)

    async def _execute(self, fid: int, request: pb.ExecuteRequest) -> None:
        assert self.core is not None
        self.send(fid, "result", await self.core.execute(request))

    async def _batch(self, fid: int, batch: pb.ExecuteBatch) -> None:
        """A batch's items in order, each with its own deadline; a timeout ends the batch
        (the items after it never run: the host sends them again)."""
        assert self.core is not None
        responses = []
        self.core.dispatcher.begin(batch.request_id)   # heartbeats list the batch's id
        try:
            for request in batch.requests:
                response = await self.core.execute(request)
                responses.append(response)
                if not response.success and response.error.category == "timeout":
                    break
        finally:
            self.core.dispatcher.end(batch.request_id)
        self.send(fid, "results", pb.ExecuteResults(responses=responses))

    async def _stream(self, fid: int, request: pb.ExecuteRequest) -> None:
        """Pull the stream's chunks within the host's credit and send the ones ready, as one
        frame: a chunk never waits for another (the sender takes what is there when it
        runs), and a frame holds at most ``BATCH_BYTES`` of chunks (or one bigger chunk)."""
        assert self.core is not None
        credit = self.credits[fid]
        batch = _Batch()
        producer = asyncio.ensure_future(self._pull(request, credit, batch))
        try:
            while True:
                await batch.ready.wait()
                batch.ready.clear()
                while batch.chunks:
                    self._send_chunks(fid, batch.take())
                if producer.done():
                    producer.result()   # its error, if it failed
                    return
        finally:
            self.credits.pop(fid, None)
            if not producer.done():
                producer.cancel()
                # until its generator is closed; wait() does not swallow a cancel of ours
                await asyncio.wait([producer])
            if not producer.cancelled():
                producer.exception()   # retrieved: raised above, or our own error came first

    async def _pull(self, request: pb.ExecuteRequest, credit: _Credit, batch: "_Batch"
                    ) -> None:
        assert self.core is not None
        try:
            async with contextlib.aclosing(self.core.stream(request)) as chunks:
                async for chunk in chunks:
                    while credit.available <= 0:
                        credit.granted.clear()
                        await credit.granted.wait()
                    credit.available -= 1
                    self.segments.export(chunk)   # its large blobs go by shared memory
                    batch.add(chunk)
        finally:
            batch.ready.set()   # wake the sender: it sends what is left and sees we are done

    def _send_stream(self, fid: int, first: int, entries: list[Run | pb.ToolChunk]) -> None:
        """(any thread) A stream's next chunks, ids from ``first`` on: a :class:`Run` of plain
        chunks as one packed frame, consecutive other chunks (blobs, metadata, the final one)
        together up to ``BATCH_BYTES`` a frame (or one bigger chunk alone)."""
        pieces: list[bytes] = []
        i = 0
        while i < len(entries):
            entry = entries[i]
            if isinstance(entry, Run):
                pieces += self._frame(fid, "chunks", pb.ToolChunks(
                    first_chunk_id=first, packed_json=entry.array()), [])
                first += entry.count
                i += 1
                continue
            run = [entry]
            size = entry.ByteSize()
            while i + len(run) < len(entries):
                after = entries[i + len(run)]
                if isinstance(after, Run):
                    break
                size += after.ByteSize()
                if size > BATCH_BYTES:
                    break
                run.append(after)
            for chunk in run:
                chunk.chunk_id = first
                first += 1
                self.segments.export(chunk)   # its large blobs go by shared memory
            pieces += self._chunk_frame(fid, run)
            i += len(run)
        self._write(pieces)

    def _send_chunks(self, fid: int, chunks: list[pb.ToolChunk]) -> None:
        self._write(self._chunk_frame(fid, chunks))

    def _chunk_frame(self, fid: int, chunks: list[pb.ToolChunk]) -> list[bytes]:
        """Consecutive chunks of stream ``fid`` as one frame: ``chunk`` for one, else
        ``chunks``."""
        if len(chunks) == 1:
            return self._frame(fid, "chunk", chunks[0], chunks)
        return self._frame(fid, "chunks", pb.ToolChunks(chunks=chunks), chunks)

    async def _forward_telemetry(self, core: WorkerCore) -> None:
        try:
            async with contextlib.aclosing(core.telemetry_batches()) as batches:
                async for batch in batches:
                    for event in batch:
                        self.send(0, "telemetry_event", event)
        except ConnectionError:
            pass


def _packed_results(results: pb.ExecuteResults) -> pb.ExecuteResults:
    """The answer to a packed batch: packed when every item succeeded without blobs (the
    tool threads pack theirs already)."""
    responses = results.responses
    if results.packed_json:
        return results
    if all(r.success and not r.blobs for r in responses):
        return pb.ExecuteResults(packed_json=b"[" + b",".join(
            r.result_json or b"null" for r in responses) + b"]")
    return results


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
            self._send(fid, kind, request)
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
        except (OSError, ValueError) as exc:   # /dev/shm full, a frame over the limit
            self._settle(fid, exc=HostToolError("host", type(exc).__name__, str(exc)))

    def resolve(self, fid: int, kind: str, frame: pb.Frame) -> None:
        with self._lock:
            entry = self._pending.get(fid)
        if entry is None:   # the caller gave up (timeout)
            if kind != "error":
                shm.discard(getattr(frame, kind), self._server.peer_prefix)
            return
        expected, _ = entry
        if kind in shm.BLOB_KINDS:
            try:
                shm.check_peer(getattr(frame, kind), self._server.peer_prefix)
            except shm.SegmentError as exc:
                self._settle(fid, exc=HostToolError("host", "ForeignSegment", str(exc)))
                return
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
