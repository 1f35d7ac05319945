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
import os
import time
import uuid
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, \
    nullcontext
from typing import Any, AsyncIterator, Iterator, cast

import trio
from opentelemetry import propagate, trace

from snakepit.errors import (DeadlinePassed, InvalidArgumentsError, PoolNotReady,
                             PoolSaturated, QueueTimeout, RequestTimeout, ShuttingDown,
                             SnakepitError, TransportError, WorkerCrashed, error_from_wire)
from snakepit.chunk import Chunk
from snakepit.pool.dispatcher import Dispatcher
from snakepit.pool.runtime import PoolRuntime, any_listening
from snakepit.pool.worker import Worker
from snakepit.transport.base import PackedResults
from snakepit.validate import check_seconds, encode_args
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

log = logging.getLogger("snakepit.pool")
_TRACER = trace.get_tracer("snakepit")

STREAM_START = ("stream", "start")
STREAM_CHUNK = ("stream", "chunk")
STREAM_STOP = ("stream", "stop")


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
        # Correlation ids: unique across runs (a random prefix per pool object) at the cost of
        # a counter, not a uuid4 per call.
        self._run = uuid.uuid4().hex[:16]
        self._corr = itertools.count(1)

    # -- requests ---------------------------------------------------------------------------
    def _request(self, tool: str, args: Any, session_id: str | None,
                 correlation_id: str | None, timeout: float,
                 into: Any = None) -> pb.ExecuteRequest:
        """The request for one call, validated and encoded; ``into``: a repeated field of
        ExecuteRequests to add it to (a batch's, without building it twice)."""
        args_json, blobs = encode_args(tool, self._prepared(tool, args))
        make = pb.ExecuteRequest if into is None else into.add
        request: pb.ExecuteRequest = make(
            request_id=f"{self.runtime.run_token}-{next(self._ids)}", tool=tool,
            args_json=args_json, session_id=session_id or "",
            correlation_id=correlation_id or f"{self._run}-{next(self._corr)}",
            timeout=0.0 if math.isinf(timeout) else timeout)
        if blobs:
            for key, blob in blobs.items():
                request.blobs[key].CopyFrom(blob)
        return request

    def _prepared(self, tool: str, args: Any) -> dict[str, Any]:
        """A call's arguments, checked and passed through the adapter's hooks."""
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
        return cast(dict[str, Any], adapter.prepare_args(tool, args))

    def _timeout(self, tool: str, args: Any, timeout: float | None, default: float) -> float:
        if timeout is None:
            timeout = self.runtime.adapter.timeout(tool, args or {}) or default
        return check_seconds(timeout, "timeout")

    def _batch(self, tool: str, args_list: list[Any], session_id: str | None,
               timeout: float) -> pb.ExecuteBatch:
        if not isinstance(args_list, list) or not args_list:
            raise InvalidArgumentsError(f"a batch is a non-empty list of argument dicts, got "
                                        f"{args_list!r:.60}", details={"tool": tool})
        batch = pb.ExecuteBatch(request_id=f"{self.runtime.run_token}-{next(self._ids)}")
        if self.batches:   # the pipe: plain arguments go as one JSON array (the packed form)
            prepared = [self._prepared(tool, args) for args in args_list]
            packed = serialization.encode_plain(prepared)
            if packed is not None:
                template = batch.template
                template.tool, template.session_id = tool, session_id or ""
                template.correlation_id = f"{self._run}-{next(self._corr)}"
                template.timeout = 0.0 if math.isinf(timeout) else timeout
                batch.packed_args_json = packed
                return batch
        for args in args_list:
            self._request(tool, args, session_id, None, timeout, into=batch.requests)
        return batch

    @asynccontextmanager
    async def _call(self, kind: str, tool: str, args: Any, session_id: str | None,
                    timeout: float | None, correlation_id: str | None
                    ) -> AsyncIterator["_Lease"]:
        """The one call path of ``execute``, ``execute_batch`` and ``stream``: validate and
        encode, check a worker out (the queue wait counts against the timeout), trace and time
        it, map a lost worker to ``WorkerCrashed``, count every failure in ``errors``, and give
        the worker back: at once when it answered, after it confirms the tool ended when the
        caller gave up. A batch's ``args`` is a list of argument dicts; its timeout is each
        item's, so the whole batch has as many timeouts as it has items."""
        rt = self.runtime
        batch = kind == "batch"
        rt.requests += len(args) if batch and isinstance(args, list) else 1
        start, stop, failed = _EVENTS[kind]
        events = any_listening(_FULL_NAMES[kind])
        t0 = trio.current_time()
        lease: _Lease | None = None
        meta: dict[str, Any] = {}
        try:
            limit = self._timeout(tool, args[0] if batch and args else args, timeout,
                                  rt.config.stream_timeout if kind == "stream"
                                  else rt.config.request_timeout)
            if batch:
                request: Any = self._batch(tool, args, session_id, limit)
                first = request.requests[0] if request.requests else request.template
                meta = {"tool": tool, "session_id": session_id, "items": len(args),
                        "correlation_id": first.correlation_id}
            else:
                request = first = self._request(tool, args, session_id, correlation_id, limit)
                meta = {"tool": tool, "session_id": session_id,
                        "correlation_id": request.correlation_id}
            if events and kind != "stream":
                rt.emit(start, {"system_time": time.time()}, meta)
            # The call's deadline ends the wait for a worker and the wait for its answer, with
            # no cancel scope around them (a scope costs more than the rest of a pipe call's
            # wait); a stream, whose chunks the caller takes inside the block, runs in one.
            deadline = t0 + (limit * len(args) if batch else limit)
            with _span(kind, self.name, first) as span, \
                    (trio.move_on_at(deadline) if kind == "stream" else _UNSCOPED) as scope:
                worker = cast(Worker, await self._checkout(session_id, meta, deadline))
                lease = _Lease(self, worker, request, trio.current_time() - t0, deadline,
                               kind == "stream" and rt.listening(STREAM_CHUNK))
                meta["worker_id"] = worker.id
                if span is not None:
                    span.set_attribute("snakepit.worker", worker.id)
                if events and kind == "stream":   # a stream starts when it has its worker
                    rt.emit(start, {"queue_time": lease.queue_time}, meta)
                try:
                    yield lease
                except SnakepitError as exc:
                    crash = self._crash(worker, exc)
                    if crash is exc:
                        raise
                    raise crash from exc
                finally:
                    lease.end()
            if scope.cancelled_caught:
                raise DeadlinePassed(f"{tool!r} passed its deadline")
        except SnakepitError as exc:
            error = exc if not isinstance(exc, DeadlinePassed) else RequestTimeout(
                f"{tool!r} did not finish within {limit} s",
                details={"tool": tool, "timeout": limit, "pool": self.name})
            rt.errors += 1
            # A call that fails before any I/O (saturated, bad arguments) is still a
            # checkpoint, so a retry loop cannot starve the event loop.
            await trio.lowlevel.checkpoint()
            if events:
                rt.emit(failed, {"duration": trio.current_time() - t0,
                                 "queue_time": lease.queue_time if lease else 0.0},
                        {**meta, "success": False, "kind": type(error).__name__,
                         "reason": error.message})
            if error is exc:
                raise
            raise error from None
        if events:
            rt.emit(stop, {"duration": trio.current_time() - t0,
                           "queue_time": lease.queue_time if lease else 0.0,
                           **({"chunks": lease.chunks} if kind == "stream" and lease else {})},
                    {**meta, "success": True})

    async def execute_batch(self, tool: str, args_list: list[Any], *,
                            session_id: str | None = None, timeout: float | None = None
                            ) -> list[Any]:
        """Run ``tool`` once per item of ``args_list`` on one worker, in order, in one frame
        (the pipe transport; see ``batches``). Returns an outcome per item that ran: its
        result, or the :class:`SnakepitError` it failed with. Fewer outcomes than items when
        an item timed out in the worker: the ones after it never ran."""
        async with self._call("batch", tool, args_list, session_id, timeout, None) as lease:
            responses = await lease.worker.transport.execute_batch(lease.request,
                                                                   deadline=lease.deadline)
            adapter = self.runtime.adapter
            if isinstance(responses, PackedResults):   # every item succeeded
                lease.answered()
                if len(responses) != len(args_list):
                    raise TransportError(f"{len(responses)} results for a batch of "
                                         f"{len(args_list)} {tool!r} calls",
                                         details={"tool": tool})
                return [adapter.process_result(tool, value) for value in responses]
            lease.answered(next((r.error for r in responses if not r.success
                                 and r.error.category == "timeout"), None))
            outcomes: list[Any] = []
            for response in responses:
                if response.success:
                    outcomes.append(adapter.process_result(
                        tool, _decode(tool, response.result_json, response.blobs)))
                else:
                    self.runtime.errors += 1
                    outcomes.append(_error(response.error))
        return outcomes

    @property
    def batches(self) -> bool:
        """Whether :meth:`execute_batch` sends a batch as one frame (the pipe transport)."""
        return self.runtime.config.resolved_transport == "pipe"

    async def execute(self, tool: str, args: Any = None, *, session_id: str | None = None,
                      timeout: float | None = None, correlation_id: str | None = None) -> Any:
        async with self._call("execute", tool, args, session_id, timeout,
                              correlation_id) as lease:
            response = await lease.worker.transport.execute(lease.request,
                                                            deadline=lease.deadline)
            lease.answered(response.error if not response.success else None)
            if not response.success:
                raise _error(response.error)
            result = _decode(tool, response.result_json, response.blobs)
            result = self.runtime.adapter.process_result(tool, result)
        return result

    async def _checkout(self, session_id: str | None, meta: dict[str, Any],
                        deadline: float) -> Any:
        try:
            return await self.dispatcher.checkout(session_id, deadline)
        except PoolSaturated:
            self.runtime.emit(("pool", "saturated"), {"queued": self.dispatcher.queued},
                              {**meta, "max_queue_size": self.dispatcher.max_queue_size})
            raise
        except QueueTimeout:
            self.runtime.emit(("pool", "queue_timeout"),
                              {"queue_timeout": self.dispatcher.queue_timeout}, meta)
            raise

    def _crash(self, worker: Worker, exc: SnakepitError) -> SnakepitError:
        if isinstance(exc, WorkerCrashed) and worker.alive:
            # Its server is unreachable: no new request may go there, and the process is
            # killed at once (it is not going to finish anything); the starter replaces it.
            worker.stop(f"unreachable: {exc}", kill=True)
        if isinstance(exc, (WorkerCrashed, ShuttingDown)) or not worker.alive:
            if self.dispatcher.closed:
                return ShuttingDown(f"pool {self.name!r} stopped during the call",
                                    details={"pool": self.name, "worker": worker.id})
            return WorkerCrashed(
                f"worker {worker.id} (pid {worker.pid}) died during the call",
                details={"pool": self.name, "worker": worker.id, "pid": worker.pid,
                         "reason": worker.exit_reason or str(exc)})
        return exc

    @asynccontextmanager
    async def stream(self, tool: str, args: Any = None, *, session_id: str | None = None,
                     timeout: float | None = None, correlation_id: str | None = None
                     ) -> AsyncIterator[AsyncIterator[Chunk]]:
        async with self._call("stream", tool, args, session_id, timeout,
                              correlation_id) as lease:
            async with lease.worker.transport.stream(lease.request) as messages:
                yield _Chunks(lease, messages)

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


_UNTRACED: AbstractContextManager[Any] = nullcontext()
_UNSCOPED: AbstractContextManager[Any] = nullcontext(trio.CancelScope())   # never cancelled


def _span(kind: str, pool: str, request: pb.ExecuteRequest) -> AbstractContextManager[Any]:
    """The call's span, and its W3C context in the request (the worker's span becomes its
    child) — only when an OpenTelemetry SDK is installed: without one (a ProxyTracerProvider)
    a span would cost microseconds per call for nothing, so a shared no-op stands in."""
    if _no_provider() or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return _UNTRACED
    return _traced(kind, pool, request)


def _no_provider() -> bool:
    """True while no tracer provider is set or configured by the environment (asking
    ``get_tracer_provider`` looks the environment up on every call)."""
    return getattr(trace, "_TRACER_PROVIDER", True) is None and not _PROVIDER_FROM_ENV


_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


@contextmanager
def _traced(kind: str, pool: str, request: pb.ExecuteRequest) -> Iterator[Any]:
    with _TRACER.start_as_current_span(f"snakepit.{kind}", attributes={
            "snakepit.pool": pool, "snakepit.tool": request.tool,
            "snakepit.correlation_id": request.correlation_id}) as span:
        propagate.inject(request.metadata)
        yield span


_EVENTS = {
    "execute": (("request", "execute", "start"), ("request", "execute", "stop"),
                ("request", "execute", "exception")),
    "batch": (("request", "execute", "start"), ("request", "execute", "stop"),
              ("request", "execute", "exception")),
    "stream": (STREAM_START, STREAM_STOP, ("stream", "exception")),
}
_FULL_NAMES = {kind: tuple(("snakepit",) + event for event in events)
               for kind, events in _EVENTS.items()}


class _Lease:
    """One request's hold on a worker, from checkout until the worker is given back."""

    __slots__ = ("pool", "worker", "request", "queue_time", "deadline", "finished", "chunks",
                 "_chunk_events")

    def __init__(self, pool: Pool, worker: Worker, request: pb.ExecuteRequest,
                 queue_time: float, deadline: float, chunk_events: bool = False) -> None:
        self.pool, self.worker, self.request = pool, worker, request
        self.queue_time = queue_time
        # the call's end (trio time) for the transport; None: no timeout
        self.deadline = None if deadline == math.inf else deadline
        self.finished = False    # the worker answered: the tool has ended there
        self.chunks = 0
        self._chunk_events = chunk_events   # a stream whose chunks are reported

    def answered(self, error: Any = None) -> None:
        """The worker's last word on this request. An answer that says the tool's deadline
        passed does not say the tool ended (a sync tool runs on): it is confirmed like a
        cancellation."""
        self.finished = error is None or error.category != "timeout"

    def _chunk_event(self, size: int, chunk_id: int) -> None:
        self.pool.runtime.emit(STREAM_CHUNK, {"bytes": size},
                               {"pool": self.pool.name, "tool": self.request.tool,
                                "correlation_id": self.request.correlation_id,
                                "worker_id": self.worker.id, "chunk_id": chunk_id})

    def end(self) -> None:
        if self.finished or not self.worker.alive:
            self.pool.runtime.roster.release(self.worker)
        else:
            self.worker.abandoned(self.request.request_id)

    def chunk(self, msg: Any) -> Chunk | None:
        """``msg`` (a ``ToolChunk``, or a Chunk a transport decoded already) as a Chunk; None
        for the protocol's end-of-stream marker (a final chunk with no data, blobs or
        metadata), which is not delivered."""
        if type(msg) is Chunk:
            self.chunks += 1
            if self._chunk_events:
                self._chunk_event(len(serialization.dumps(msg.data)), msg.chunk_id)
            return msg
        if msg.HasField("error") and msg.error.category:
            self.answered(msg.error)
            raise _error(msg.error)
        if msg.is_final and not (msg.data_json or msg.blobs or msg.metadata):
            self.answered()
            return None
        try:
            data = serialization.decode(msg.data_json, msg.blobs) if msg.data_json else None
        except ValueError as exc:   # bad JSON, or a shared-memory blob that is gone
            self.answered()
            raise TransportError(f"a chunk of {self.request.tool!r} could not be decoded: "
                                 f"{exc}", details={"tool": self.request.tool}) from None
        if msg.is_final:
            self.answered()
        self.chunks += 1
        if self._chunk_events:
            self._chunk_event(len(msg.data_json), msg.chunk_id)
        return Chunk(data=data, is_final=msg.is_final, chunk_id=msg.chunk_id,
                     metadata=dict(msg.metadata))


class _Chunks:
    """The async iterator ``Pool.stream`` yields: decoded chunks, ending after the final one.
    A chunk carrying an error raises it (the stream ends there). The empty final chunk that
    ends a generator's stream on the wire ends the iteration instead of being delivered: a
    caller sees exactly the chunks the tool yielded."""

    def __init__(self, lease: _Lease, messages: AsyncIterator[Any]) -> None:
        self._lease, self._messages = lease, messages

    def __aiter__(self) -> "_Chunks":
        return self

    async def __anext__(self) -> Chunk:
        if self._lease.finished:
            raise StopAsyncIteration
        try:
            msg = await self._messages.__anext__()
        except StopAsyncIteration:
            self._lease.answered()
            raise
        chunk = self._lease.chunk(msg)
        if chunk is None:
            raise StopAsyncIteration
        return chunk
