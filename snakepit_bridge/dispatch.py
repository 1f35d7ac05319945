"""The worker's request core, independent of the transport that carries requests.

``ToolDispatcher.execute(request)`` → ``ExecuteResponse`` and ``ToolDispatcher.stream(request)``
→ async iterator of ``ToolChunk``: look up the tool, decode and bind the arguments, run it (sync
tools in the worker's thread pool, async tools on the loop, async generators chunk by chunk, sync
generators read ahead on their thread, up to 64 chunks or 1 MiB at a time), and turn
results and errors into messages. Cancelling the awaiting task cancels the tool: async tools are
cancelled, generators closed (their ``finally`` runs), sync tools see ``ctx.cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import concurrent.futures
import contextvars
import dataclasses
import functools
import threading
import time
import traceback
from typing import Any, AsyncGenerator, Callable


from snakepit_bridge import serialization, telemetry, tracing
from snakepit_bridge.adapter import ArgumentError, BaseAdapter, ToolInfo
from snakepit_bridge.context import Cancellation, HostCaller, SessionContext
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.read_ahead import END, Raised, ReadAhead


@dataclasses.dataclass(frozen=True, slots=True)
class StreamChunk:
    """Yield this from a streaming tool to set metadata or mark the final chunk yourself."""

    data: Any = None
    is_final: bool = False
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


def error_info(category: str, type_: str, message: str, details: dict[str, Any] | None = None,
               tb: str = "") -> pb.ErrorInfo:
    return pb.ErrorInfo(category=category, type=type_, message=message,
                        details_json=serialization.dumps(details or {}), traceback=tb)


class _Failure(Exception):
    def __init__(self, info: pb.ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


def _chunk_size(chunk: pb.ToolChunk) -> int:
    return int(chunk.ByteSize())


def _is_final(chunk: pb.ToolChunk) -> bool:
    return chunk.is_final


class ToolDispatcher:
    def __init__(self, adapter: BaseAdapter, *, worker_id: str, host: HostCaller | None,
                 max_concurrency: int) -> None:
        self.adapter = adapter
        self.tools: dict[str, ToolInfo] = adapter.tools()
        self.worker_id = worker_id
        self.host = host
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="snakepit-tool")
        self.slots = asyncio.Semaphore(max_concurrency)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        # request_id -> tools of that request still running (abandoned ones included): the
        # heartbeat reports them so the host knows when a cancelled sync tool has really ended.
        # Counted under a lock: the loop and the pipe's tool threads (``run_inline``) both count.
        self.running: dict[str, int] = {}
        self._counting = threading.Lock()

    # -- shared steps -----------------------------------------------------------------------
    def _prepare(self, req: pb.ExecuteRequest, streaming: bool,
                 cancel: Cancellation | None = None, args: Any = None
                 ) -> tuple[ToolInfo, dict[str, Any], Cancellation]:
        tool = self.tools.get(req.tool)
        if tool is None:
            raise _Failure(error_info(
                "unknown_tool", "UnknownTool",
                f"no tool named {req.tool!r}; available: {', '.join(sorted(self.tools))}",
                {"tool": req.tool, "available": sorted(self.tools)}))
        if tool.streaming and not streaming:
            raise _Failure(error_info(
                "invalid_arguments", "StreamingTool",
                f"{tool.name!r} is a streaming tool: use stream() (ExecuteStream), not execute()",
                {"tool": tool.name}))
        try:
            if args is None:   # not decoded already (a packed batch's item is)
                args = serialization.decode(req.args_json, req.blobs)
        except serialization.JSONDecodeError as exc:
            raise _Failure(error_info("invalid_arguments", "InvalidJSON",
                                      f"arguments of {tool.name!r} are not valid JSON: {exc}",
                                      {"tool": tool.name})) from None
        except (ValueError, TypeError) as exc:
            # a blob with an unknown dtype, a shape that does not fit its bytes, a missing
            # blob or shared-memory segment: what a non-conforming peer can send
            raise _Failure(error_info("invalid_arguments", "InvalidBlob",
                                      f"a blob in the arguments of {tool.name!r} cannot be "
                                      f"decoded: {exc}", {"tool": tool.name})) from None
        try:
            kwargs = tool.bind(args)
        except ArgumentError as exc:
            raise _Failure(error_info("invalid_arguments", "InvalidArguments", str(exc),
                                      exc.details)) from None
        if cancel is None:
            cancel = deadline_of(req)
        if tool.ctx_param:
            state = self.sessions.setdefault(req.session_id, {}) if req.session_id else None
            kwargs[tool.ctx_param] = SessionContext(
                session_id=req.session_id, correlation_id=req.correlation_id, host=self.host,
                session_state=state, metadata=dict(req.metadata), cancel=cancel)
        return tool, kwargs, cancel

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
        ctx = contextvars.copy_context()
        thread = self.executor.submit(ctx.run, fn, *args)
        work = asyncio.wrap_future(thread)
        work._snakepit_thread = thread  # type: ignore[attr-defined]
        return work

    def _thread_of(self, work: Any) -> "concurrent.futures.Future[Any] | None":
        """The executor's future behind ``_in_thread``'s (asyncio's says "done" as soon as it
        is cancelled; the thread's says so when the thread returns)."""
        return getattr(work, "_snakepit_thread", None)

    async def _acquire(self, request_id: str) -> None:
        await self.slots.acquire()
        self.begin(request_id)

    def _release(self, request_id: str) -> None:
        self.end(request_id)
        self.slots.release()

    def begin(self, request_id: str) -> None:
        """A tool of this request runs from now on (any thread)."""
        with self._counting:
            self.in_flight += 1
            running = self.running
            running[request_id] = running.get(request_id, 0) + 1

    def end(self, request_id: str) -> None:
        """A tool of this request has returned (any thread)."""
        with self._counting:
            self.in_flight -= 1
            running = self.running
            left = running.get(request_id, 0) - 1
            if left > 0:
                running[request_id] = left
            else:
                running.pop(request_id, None)

    def running_ids(self) -> list[str]:
        with self._counting:
            return list(self.running)

    def _release_when_done(self, work: Any, request_id: str) -> None:
        """A sync tool whose caller gave up runs on in its thread: its slot (and its place in
        ``running``) is released when the thread returns, not before, so the next request
        does not queue behind it unseen."""
        thread = self._thread_of(work)
        if thread is None or thread.done():
            self._release(request_id)
            return
        loop = asyncio.get_running_loop()

        def done(_: Any) -> None:   # on the tool's thread
            try:
                loop.call_soon_threadsafe(self._release, request_id)
            except RuntimeError:    # the loop is closed: the worker is exiting
                pass
        thread.add_done_callback(done)

    @staticmethod
    def _tool_error(tool: ToolInfo, req: pb.ExecuteRequest, exc: BaseException,
                    cancel: Cancellation) -> pb.ErrorInfo:
        if cancel.reason == "timeout":
            # The deadline cut the request while the tool was failing (a host call it made
            # noticed first): it is the request's timeout, as if the worker had noticed first.
            return _timeout(tool, req)
        return error_info("tool", type(exc).__name__, str(exc), {"tool": tool.name},
                          "".join(traceback.format_exception(exc)))

    @staticmethod
    def _encode(tool: str, value: Any) -> tuple[bytes, dict[str, pb.Blob]]:
        try:
            return serialization.encode(value, root="result")
        except serialization.Unserializable as exc:
            raise _Failure(error_info(
                "unserializable_result", "Unserializable",
                f"{tool!r} returned a value that cannot be sent: {exc}",
                {"tool": tool, "type": exc.type_name, "path": exc.path})) from None

    # -- unary ------------------------------------------------------------------------------
    def inline(self, tool: str) -> bool:
        """Whether ``tool`` can run with :meth:`run_inline`: a known sync, unary tool."""
        info = self.tools.get(tool)
        return info is not None and not info.is_async and not info.streaming

    def run_inline(self, req: pb.ExecuteRequest, cancel: Cancellation,
                   args: dict[str, Any] | None = None) -> pb.ExecuteResponse:
        """Run a sync tool (:meth:`inline`) in the calling thread, start to answer. The
        caller has counted the request (:meth:`begin`), watches its deadline and cancels
        through ``cancel``; the tool sees both as ``ctx.cancelled``. ``args``: the arguments
        decoded already (then ``req.args_json`` is not read)."""
        ok, out = self.call_inline(req, cancel, args)
        return self.encoded(req.tool, out) if ok else out

    def call_inline(self, req: pb.ExecuteRequest, cancel: Cancellation,
                    args: dict[str, Any] | None = None) -> tuple[bool, Any]:
        """:meth:`run_inline` without encoding the result: ``(True, value)``, or ``(False,
        the failure's ExecuteResponse)``. A packed batch encodes its items' values together
        (:meth:`encoded` gives one value's response, the same as ``run_inline`` would)."""
        token = telemetry.correlation.set(req.correlation_id)
        try:
            with tracing.span("snakepit.worker.execute", req):
                tool, kwargs, _ = self._prepare(req, False, cancel, args)
                try:
                    return True, tool.fn(**kwargs)
                except Exception as exc:
                    raise _Failure(self._tool_error(tool, req, exc, cancel)) from None
        except _Failure as failure:
            return False, pb.ExecuteResponse(success=False, error=failure.info)
        finally:
            telemetry.correlation.reset(token)

    def encoded(self, tool: str, value: Any) -> pb.ExecuteResponse:
        """The response for ``value``, a result of ``tool``: its failure when it cannot be
        sent."""
        try:
            return self._succeeded(tool, value)
        except _Failure as failure:
            return pb.ExecuteResponse(success=False, error=failure.info)

    def inline_stream(self, tool: str) -> bool:
        """Whether ``tool`` can run with :meth:`run_stream_inline`: a known sync generator."""
        info = self.tools.get(tool)
        return info is not None and not info.is_async and info.streaming

    def run_stream_inline(self, req: pb.ExecuteRequest, cancel: Cancellation,
                          take_credit: Callable[[], int],
                          emit: Callable[[bytes | pb.ToolChunk], None]) -> None:
        """Run a sync generator tool (:meth:`inline_stream`) in the calling thread. Items are
        pulled only within the host's credit (``take_credit()`` waits for more and returns how
        many chunks it allows) and go to ``emit``: a plain value as its JSON bytes, anything
        else (blobs, a :class:`StreamChunk`) as a ``ToolChunk``; the last thing emitted is a
        final ``ToolChunk`` (empty at the generator's end, or the error). Once ``cancel`` is
        set (cancelled, timed out) or ``take_credit()`` returns 0, the stream is over without
        us (the caller answers it). The generator is closed here, on its own thread."""
        token = telemetry.correlation.set(req.correlation_id)
        gen: Any = None
        tool: ToolInfo | None = None
        try:
            tool, kwargs, _ = self._prepare(req, True, cancel)
            gen = tool.fn(**kwargs)
            encode = serialization.encode
            credit = 0
            while True:
                if not credit:
                    credit = take_credit()
                    if not credit:
                        return
                elif cancel.reason is not None:
                    return
                credit -= 1
                try:
                    item = next(gen)
                except StopIteration:
                    emit(pb.ToolChunk(is_final=True))
                    return
                if type(item) is StreamChunk:
                    chunk = self._chunk(tool.name, item)
                    emit(chunk)
                    if chunk.is_final:
                        return
                    continue
                try:
                    data, blobs = encode(item, root="result")
                except serialization.Unserializable:
                    data, blobs = self._encode(tool.name, item)   # raises, as a _Failure
                emit(pb.ToolChunk(data_json=data, blobs=blobs) if blobs else data)
        except _Failure as failure:
            emit(pb.ToolChunk(is_final=True, error=failure.info))
        except Exception as exc:
            assert tool is not None   # _prepare raises only _Failure
            emit(pb.ToolChunk(is_final=True, error=self._tool_error(tool, req, exc, cancel)))
        finally:
            cancel.set("finished")
            if gen is not None:
                with contextlib.suppress(Exception):   # failing in its finally: still ended
                    gen.close()
            telemetry.correlation.reset(token)

    def _succeeded(self, tool: str, value: Any) -> pb.ExecuteResponse:
        data, blobs = self._encode(tool, value)
        if not blobs:   # (an empty map given to the constructor adds 0.4 of 1.1 µs, timeit)
            return pb.ExecuteResponse(success=True, result_json=data)
        return pb.ExecuteResponse(success=True, result_json=data, blobs=blobs)

    def timed_out(self, req: pb.ExecuteRequest) -> pb.ExecuteResponse:
        """The answer to a request whose deadline passed before its tool returned."""
        return pb.ExecuteResponse(success=False, error=_timeout(self.tools[req.tool], req))

    async def execute(self, req: pb.ExecuteRequest) -> pb.ExecuteResponse:
        token = telemetry.correlation.set(req.correlation_id)
        try:
            with tracing.span("snakepit.worker.execute", req):
                value = await self._run_unary(req)
            return self._succeeded(req.tool, value)
        except _Failure as failure:
            return pb.ExecuteResponse(success=False, error=failure.info)
        finally:
            telemetry.correlation.reset(token)

    async def _run_unary(self, req: pb.ExecuteRequest, *, streaming: bool = False) -> Any:
        tool, kwargs, cancel = self._prepare(req, streaming)
        await self._acquire(req.request_id)
        work: Any = None
        try:
            try:
                if tool.is_async:
                    work = tool.fn(**kwargs)
                else:
                    work = self._in_thread(functools.partial(tool.fn, **kwargs))
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
                # arrives as the awaited step completes (the stream hang found by the bench).
                async with asyncio.timeout(req.timeout if req.timeout > 0 else None):
                    return await work
            except asyncio.TimeoutError:
                cancel.set("timeout")
                raise _Failure(_timeout(tool, req)) from None
            except asyncio.CancelledError:
                cancel.set("cancelled")
                raise
            except _Failure:
                raise
            except Exception as exc:
                raise _Failure(self._tool_error(tool, req, exc, cancel)) from None
        finally:
            if isinstance(work, asyncio.Future):
                work.cancel()   # a thread that has not started yet never runs
            self._release_when_done(work, req.request_id)

    # -- streaming --------------------------------------------------------------------------
    async def stream(self, req: pb.ExecuteRequest) -> AsyncGenerator[pb.ToolChunk, None]:
        # Set, never reset: a stream runs in a task of its own, and a generator may be closed
        # from another context (where resetting a token raises).
        telemetry.correlation.set(req.correlation_id)
        chunk_id = 0
        try:
            if req.tool in self.tools and not self.tools[req.tool].streaming:
                value = await self._run_unary(req, streaming=True)
                data, blobs = self._encode(req.tool, value)
                yield pb.ToolChunk(chunk_id=1, data_json=data, blobs=blobs, is_final=True)
                return
            # Closed here, in this task, when the caller leaves early: left to the garbage
            # collector, the tool's generator would hold its slot until an asyncgen
            # finalizer ran it in another task (and context).
            async with contextlib.aclosing(self._stream_tool(req)) as chunks:
                async for chunk in chunks:
                    chunk_id += 1
                    chunk.chunk_id = chunk_id
                    yield chunk
                    if chunk.is_final:
                        return
        except _Failure as failure:
            yield pb.ToolChunk(chunk_id=chunk_id + 1, is_final=True, error=failure.info)
            return
        yield pb.ToolChunk(chunk_id=chunk_id + 1, is_final=True)

    async def _stream_tool(self, req: pb.ExecuteRequest
                           ) -> AsyncGenerator[pb.ToolChunk, None]:
        tool, kwargs, cancel = self._prepare(req, True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.timeout if req.timeout > 0 else None
        await self._acquire(req.request_id)
        step: Any = None
        try:
            gen: Any = None
            try:
                if tool.is_async:
                    gen = tool.fn(**kwargs)
                    while True:
                        step = gen.__anext__()
                        async with asyncio.timeout_at(deadline):
                            item = await step
                        yield self._chunk(tool.name, item)
                gen = await self._in_thread(functools.partial(tool.fn, **kwargs))
                # a sync generator is read ahead on its thread: one hop per batch of chunks
                ahead = ReadAhead(loop, functools.partial(self._chunk, tool.name),
                                  size=_chunk_size, last=_is_final)
                while True:
                    chunks, running = ahead.take_nowait()
                    if not running:
                        if ahead.ended and not chunks:
                            return
                        if not ahead.ended:   # the next step, while these chunks go out
                            ahead.begin()
                            step = self._in_thread(ahead.run, gen, cancel)
                    if not chunks:
                        if running:
                            async with asyncio.timeout_at(deadline):
                                await ahead.wait()
                        continue
                    for chunk in chunks:
                        if chunk is END:
                            return
                        if isinstance(chunk, Raised):
                            raise chunk.exc
                        yield chunk
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                cancel.set("timeout")
                raise _Failure(_timeout(tool, req)) from None
            except (_Failure, asyncio.CancelledError, GeneratorExit):
                cancel.set("cancelled")
                raise
            except Exception as exc:
                raise _Failure(self._tool_error(tool, req, exc, cancel)) from None
            finally:
                cancel.set("finished")
                thread = self._thread_of(step)
                if gen is not None and (thread is None or thread.done()):
                    await self._close(gen, tool.is_async)   # not while a step still runs
        finally:
            self._release_when_done(step, req.request_id)

    async def _close(self, gen: Any, is_async: bool) -> None:
        try:
            if is_async:
                await gen.aclose()
            else:
                await self._in_thread(gen.close)
        except Exception:  # a generator failing in its finally must not break the worker
            pass

    def _chunk(self, tool: str, item: Any) -> pb.ToolChunk:
        if isinstance(item, StreamChunk):
            data, blobs = self._encode(tool, item.data) if item.data is not None else (b"", {})
            return pb.ToolChunk(data_json=data, blobs=blobs, is_final=item.is_final,
                                metadata=item.metadata)
        data, blobs = self._encode(tool, item)
        return pb.ToolChunk(data_json=data, blobs=blobs)

    # -- sessions ---------------------------------------------------------------------------
    async def init_session(self, session_id: str, metadata: Any) -> bool:
        created = session_id not in self.sessions
        self.sessions.setdefault(session_id, {})
        await maybe_await(self.adapter.on_session_start(session_id, metadata))
        return created

    async def end_session(self, session_id: str) -> bool:
        existed = self.sessions.pop(session_id, None) is not None
        await maybe_await(self.adapter.on_session_end(session_id))
        return existed

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def deadline_of(req: pb.ExecuteRequest) -> Cancellation:
    """The request's cancellation, with its deadline (``req.timeout`` seconds from now)."""
    return Cancellation(time.monotonic() + req.timeout if req.timeout > 0 else None)


def _timeout(tool: ToolInfo, req: pb.ExecuteRequest) -> pb.ErrorInfo:
    what = f"stream {tool.name!r}" if tool.streaming else repr(tool.name)
    return error_info("timeout", "Timeout", f"{what} exceeded its {req.timeout} s deadline",
                      {"tool": tool.name, "timeout": req.timeout})


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first if it is a coroutine (adapter hooks may be sync or async)."""
    if asyncio.iscoroutine(value):
        return await value
    return value
