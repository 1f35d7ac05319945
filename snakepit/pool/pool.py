"""Pool: run one request (or stream) on a worker of the pool.

``Pool`` is what the application facade calls; it checks a worker out of the dispatcher
(waiting in the queue if need be), sends the request through the worker's transport, decodes
the answer, and counts every outcome. A timeout bounds the whole call — queue wait included —
and cancelling the caller cancels the request in the worker and returns the worker to the pool.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, cast

import attrs
import trio
from opentelemetry import propagate, trace

from snakepit.errors import (InvalidArgumentsError, PoolNotReady, PoolSaturated, QueueTimeout,
                             RequestTimeout, ShuttingDown, SnakepitError, TransportError,
                             WorkerCrashed, error_from_wire)
from snakepit.pool.dispatcher import Dispatcher
from snakepit.pool.runtime import PoolRuntime
from snakepit.pool.worker import Worker
from snakepit.validate import check_seconds, encode_args
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

log = logging.getLogger("snakepit.pool")
_TRACER = trace.get_tracer("snakepit")

EXECUTE_START = ("request", "execute", "start")
EXECUTE_STOP = ("request", "execute", "stop")
EXECUTE_EXCEPTION = ("request", "execute", "exception")
STREAM_START = ("stream", "start")
STREAM_CHUNK = ("stream", "chunk")
STREAM_STOP = ("stream", "stop")


@attrs.frozen
class Chunk:
    """One item of a stream: ``data`` (decoded JSON, blobs restored), ``is_final``,
    ``chunk_id`` (1, 2, ...), ``metadata`` (strings)."""

    data: Any
    is_final: bool
    chunk_id: int
    metadata: dict[str, str]


def _error(info: Any) -> SnakepitError:
    details = serialization.loads(info.details_json) if info.details_json else {}
    return error_from_wire(info.category, info.type, info.message,
                           details if isinstance(details, dict) else {"details": details},
                           info.traceback)


def _decode(tool: str, data: bytes, blobs: Any) -> Any:
    try:
        return serialization.decode(data, blobs)
    except ValueError as exc:   # bad JSON, or a shared-memory blob that is gone
        raise TransportError(f"the result of {tool!r} could not be decoded: {exc}",
                             details={"tool": tool}) from None


class Pool:
    def __init__(self, runtime: PoolRuntime, dispatcher: Dispatcher) -> None:
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.name = runtime.name
        self._ids = itertools.count(1)

    # -- requests ---------------------------------------------------------------------------
    def _request(self, tool: str, args: Any, session_id: str | None,
                 correlation_id: str | None, timeout: float) -> pb.ExecuteRequest:
        if not isinstance(tool, str) or not tool:
            raise InvalidArgumentsError(f"tool must be a non-empty string, got {tool!r}")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidArgumentsError(
                f"args must be a dict of argument names to values, got {type(args).__name__}",
                details={"tool": tool})
        adapter = self.runtime.adapter
        adapter.validate(tool, args)
        args = adapter.prepare_args(tool, args)
        args_json, blobs = encode_args(tool, args)
        return pb.ExecuteRequest(
            request_id=f"{self.runtime.run_token}-{next(self._ids)}", tool=tool,
            args_json=args_json, blobs=blobs, session_id=session_id or "",
            correlation_id=correlation_id or uuid.uuid4().hex,
            timeout=0.0 if math.isinf(timeout) else timeout)

    def _timeout(self, tool: str, args: Any, timeout: float | None, default: float) -> float:
        if timeout is None:
            timeout = self.runtime.adapter.timeout(tool, args or {}) or default
        return check_seconds(timeout, "timeout")

    async def execute(self, tool: str, args: Any = None, *, session_id: str | None = None,
                      timeout: float | None = None, correlation_id: str | None = None) -> Any:
        rt = self.runtime
        rt.requests += 1
        events = rt.listening(EXECUTE_START) or rt.listening(EXECUTE_STOP) or \
            rt.listening(EXECUTE_EXCEPTION)
        t0 = trio.current_time()
        queue_time = 0.0
        worker: Worker | None = None
        meta: dict[str, Any] = {}
        try:
            timeout = self._timeout(tool, args, timeout, rt.config.request_timeout)
            request = self._request(tool, args, session_id, correlation_id, timeout)
            if events:
                meta = {"tool": tool, "session_id": session_id,
                        "correlation_id": request.correlation_id}
                rt.emit(EXECUTE_START, {"system_time": time.time()}, meta)
            with _TRACER.start_as_current_span("snakepit.execute", attributes={
                    "snakepit.pool": self.name, "snakepit.tool": tool,
                    "snakepit.correlation_id": request.correlation_id}) as span, \
                    trio.move_on_after(timeout) as scope:
                propagate.inject(request.metadata)   # the worker's span becomes a child
                worker = cast(Worker, await self._checkout(session_id, meta))
                queue_time = trio.current_time() - t0
                span.set_attribute("snakepit.worker", worker.id)
                try:
                    response = await self._call(worker, request)
                finally:
                    self.finish(worker)
            if scope.cancelled_caught:
                raise RequestTimeout(f"{tool!r} did not finish within {timeout} s",
                                     details={"tool": tool, "timeout": timeout,
                                              "pool": self.name})
            if not response.success:
                raise _error(response.error)
            result = _decode(tool, response.result_json, response.blobs)
            result = rt.adapter.process_result(tool, result)
        except SnakepitError as exc:
            rt.errors += 1
            if events:
                rt.emit(EXECUTE_EXCEPTION, {"duration": trio.current_time() - t0,
                                            "queue_time": queue_time},
                        {**meta, "worker_id": worker.id if worker else None, "success": False,
                         "kind": type(exc).__name__, "reason": exc.message})
            raise
        if events:
            rt.emit(EXECUTE_STOP, {"duration": trio.current_time() - t0, "queue_time": queue_time},
                    {**meta, "worker_id": worker.id if worker else None, "success": True})
        return result

    async def _checkout(self, session_id: str | None, meta: dict[str, Any]) -> Any:
        try:
            return await self.dispatcher.checkout(session_id)
        except PoolSaturated:
            self.runtime.emit(("pool", "saturated"), {"queued": self.dispatcher.queued},
                              {**meta, "max_queue_size": self.dispatcher.max_queue_size})
            raise
        except QueueTimeout:
            self.runtime.emit(("pool", "queue_timeout"),
                              {"queue_timeout": self.dispatcher.queue_timeout}, meta)
            raise

    async def _call(self, worker: Worker, request: pb.ExecuteRequest) -> Any:
        try:
            return await worker.transport.execute(request, timeout=request.timeout or None)
        except SnakepitError as exc:
            crash = self._crash(worker, exc)
            if crash is exc:
                raise
            raise crash from exc

    def _crash(self, worker: Worker, exc: SnakepitError) -> SnakepitError:
        if isinstance(exc, WorkerCrashed) and worker.alive:
            # Its server is unreachable: no new request may go there while the process
            # finishes dying; the starter replaces it.
            self.runtime.worker_unreachable(worker, str(exc))
        if isinstance(exc, (WorkerCrashed, ShuttingDown)) or not worker.alive:
            if self.dispatcher.closed:
                return ShuttingDown(f"pool {self.name!r} stopped during the call",
                                    details={"pool": self.name, "worker": worker.id})
            return WorkerCrashed(
                f"worker {worker.id} (pid {worker.pid}) died during the call",
                details={"pool": self.name, "worker": worker.id, "pid": worker.pid,
                         "reason": worker.exit_reason or str(exc)})
        return exc

    def finish(self, worker: Worker) -> None:
        self.dispatcher.checkin(worker)
        limit = self.runtime.config.worker_max_requests
        if limit is not None and worker.requests >= limit and worker.state == "ready":
            slot = self.runtime.slots.get(worker.id)
            if slot is not None and slot.current is worker:
                slot.request_recycle("max_requests")

    @asynccontextmanager
    async def stream(self, tool: str, args: Any = None, *, session_id: str | None = None,
                     timeout: float | None = None, correlation_id: str | None = None
                     ) -> AsyncIterator[AsyncIterator[Chunk]]:
        rt = self.runtime
        rt.requests += 1
        try:
            timeout = self._timeout(tool, args, timeout, rt.config.stream_timeout)
            request = self._request(tool, args, session_id, correlation_id, timeout)
            meta = {"tool": tool, "session_id": session_id,
                    "correlation_id": request.correlation_id}
            t0 = trio.current_time()
            with trio.move_on_after(timeout) as scope:
                worker = cast(Worker, await self._checkout(session_id, meta))
                meta["worker_id"] = worker.id
                rt.emit(STREAM_START, {"queue_time": trio.current_time() - t0}, meta)
                chunks: _Chunks | None = None
                try:
                    async with worker.transport.stream(request) as messages:
                        chunks = _Chunks(self, worker, messages, meta)
                        yield chunks
                    rt.emit(STREAM_STOP, {"duration": trio.current_time() - t0,
                                          "chunks": chunks.count}, {**meta, "success": True})
                except SnakepitError as exc:
                    crash = self._crash(worker, exc)
                    if crash is exc:
                        raise
                    raise crash from exc
                finally:
                    self.finish(worker)
            if scope.cancelled_caught:
                raise RequestTimeout(f"stream {tool!r} did not finish within {timeout} s",
                                     details={"tool": tool, "timeout": timeout,
                                              "pool": self.name})
        except SnakepitError:
            rt.errors += 1
            raise

    async def end_session(self, session_id: str) -> None:
        """The session is over: its workers release their state for it (best effort)."""
        for worker in self.dispatcher.forget_session(session_id):
            try:
                await cast(Worker, worker).transport.end_session(session_id)
            except SnakepitError as exc:
                log.debug("EndSession(%s) on %s failed: %s", session_id, worker.key, exc)

    async def describe(self) -> list[dict[str, Any]]:
        """The tools of this pool's workers: name, description, parameters, streaming."""
        for worker in list(self.runtime.workers.values()):
            if worker.alive:
                d = await worker.transport.describe()
                return [{"name": t.name, "description": t.description,
                         "streaming": t.streaming,
                         "parameters": [{"name": p.name, "type": p.type,
                                         "required": p.required,
                                         "default": serialization.loads(p.default_json)}
                                        for p in t.parameters]} for t in d.tools]
        raise PoolNotReady(f"pool {self.name!r} has no ready worker to describe",
                           details={"pool": self.name})

    # -- introspection ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self.runtime.stats()

    def workers(self) -> list[dict[str, Any]]:
        return [w.info() for w in sorted(self.runtime.workers.values(), key=lambda w: w.key)]


class _Chunks:
    """The async iterator ``Pool.stream`` yields: decoded chunks, ending after the final one.
    A chunk carrying an error raises it (the stream ends there)."""

    def __init__(self, pool: Pool, worker: Worker, messages: AsyncIterator[Any],
                 meta: dict[str, Any]) -> None:
        self._pool, self._worker, self._messages = pool, worker, messages
        self._done = False
        self._meta = meta
        self._chunk_events = pool.runtime.listening(STREAM_CHUNK)
        self.count = 0

    def __aiter__(self) -> "_Chunks":
        return self

    async def __anext__(self) -> Chunk:
        if self._done:
            raise StopAsyncIteration
        try:
            msg = await self._messages.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        if msg.HasField("error") and msg.error.category:
            self._done = True
            raise _error(msg.error)
        data = serialization.decode(msg.data_json, msg.blobs) if msg.data_json else None
        self._done = msg.is_final
        self.count += 1
        if self._chunk_events:
            self._pool.runtime.emit(STREAM_CHUNK, {"bytes": len(msg.data_json)},
                                    {**self._meta, "chunk_id": msg.chunk_id})
        return Chunk(data=data, is_final=msg.is_final, chunk_id=msg.chunk_id,
                     metadata=dict(msg.metadata))
