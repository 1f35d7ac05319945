"""Sync tools of the pipe worker, run on tool threads straight from the pipe's reader thread.

    runner = InlineRunner(dispatcher, answer, failed, threads=4)
    runner.submit(fid, request)     # reader thread: queue it (a request may wait here)
    runner.submit_batch(fid, batch) # several calls, run in order by one thread
    runner.submit_stream(fid, request)  # a sync generator, its chunks within the credit
    runner.credit(fid, chunks)      # reader thread: the host takes that many more chunks
    runner.cancel(fid)              # reader thread: the host gave up on it
    runner.close()

A request for a sync unary tool needs no event loop: the reader thread puts it on a queue, a tool
thread decodes, runs and encodes it and writes the answer itself. That is one thread hop per
call, where going through asyncio costs a loop wake-up, a task and an executor hop each way.

Every job is answered at most once: by its thread (the result), by its deadline (a ``timeout``
error while the tool runs on: it sees ``ctx.cancelled``), or not at all when the host cancelled
it. A job cancelled while it waits in the queue never starts. A batch (``ExecuteBatch``) is one
job whose items run in order, each with its deadline counted from its own start; when one times
out the batch is answered with the responses so far and that timeout, and the rest never run.
A stream (a sync generator tool) runs on its thread too: an item is pulled only within the
host's credit, and its chunks reach the pipe through the :class:`~snakepit_bridge.outbox.Outbox`
(batched as they pile up); its deadline or the host's cancel stops it at the next item (the
deadline with a final timeout chunk), and the generator is closed on its own thread. From
submit until its thread is done with it, a job's request id is in the dispatcher's ``running``
(the heartbeat reports it), so the host knows when an abandoned tool has really returned.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import queue
import threading
import time
from typing import Any, Callable, Sequence

from snakepit_bridge import serialization
from snakepit_bridge.context import Cancellation
from snakepit_bridge.dispatch import ToolDispatcher, deadline_of
from snakepit_bridge.outbox import Out, Outbox, Write
from snakepit_bridge.proto import bridge_pb2 as pb

# a stream's thread writes its own pending chunks once this many pile up (the flusher writes
# fewer: those of a generator that pauses)
WRITE_AT = 256
# answer(fid, kind, message): write the reply frame (any thread)
Answer = Callable[[int, str, Any], None]
# failed(fid, exc): serving the request raised; answer it with an error frame (any thread)
Failed = Callable[[int, Exception], None]


class _Job:
    __slots__ = ("fid", "request_id", "requests", "batch", "cancel", "answered", "responses",
                 "values", "out", "credit", "args", "armed")

    def __init__(self, fid: int, request_id: str, requests: Sequence[pb.ExecuteRequest],
                 batch: bool = False, stream: bool = False) -> None:
        self.fid, self.request_id, self.requests, self.batch = fid, request_id, requests, batch
        self.cancel = deadline_of(requests[0]) if not batch else Cancellation()
        self.answered = False
        self.responses: list[pb.ExecuteResponse] = []
        # a packed batch's results while every item so far succeeded: encoded together at the
        # end (one array), or as responses once an item fails or times out
        self.values: list[Any] = []
        self.out = Out(fid) if stream else None   # a stream's chunks on their way out
        self.credit = 0                           # chunks the host takes now (a stream)
        self.args: list[Any] | None = None        # a packed batch's items' arguments
        self.armed: float | None = None   # a batch: the deadline its timer entry is for


class InlineRunner:
    """Tool threads (at most ``threads``, started as needed) fed by one queue; see the module
    docstring. ``answer`` writes an answer, ``failed`` an error frame (from any thread)."""

    def __init__(self, dispatcher: ToolDispatcher, answer: Answer, failed: Failed,
                 write_chunks: Write, *, threads: int,
                 context: contextvars.Context | None = None) -> None:
        self._dispatcher, self._answer, self._failed_frame = dispatcher, answer, failed
        # each tool thread runs in its own copy of this (the carrier's settings)
        self._context = context if context is not None else contextvars.Context()
        self._max_threads = max(1, threads)
        self._threads: list[threading.Thread] = []
        self._idle = 0                     # threads waiting for a job nobody claimed yet
        self._backlog = 0                  # jobs queued with no thread to take them yet
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()      # answered flags, idle count, the deadline heap
        self.jobs: dict[int, _Job] = {}    # fid -> job, until its thread is done with it
        self._done = threading.Condition(self._lock)
        self._deadlines: list[tuple[float, int, _Job, Cancellation]] = []
        self._order = itertools.count()
        self._timer_wake = threading.Condition(self._lock)
        self._timer: threading.Thread | None = None
        self._credit = threading.Condition(self._lock)   # streams waiting for credit
        self._outbox = Outbox(self._lock, write_chunks, self._stream_failed, self._context)
        self._closed = False

    # -- reader thread ----------------------------------------------------------------------
    def submit(self, fid: int, request: pb.ExecuteRequest) -> None:
        self._enqueue(_Job(fid, request.request_id, [request], False))

    def submit_batch(self, fid: int, batch: pb.ExecuteBatch,
                     args: list[Any] | None = None) -> None:
        """``args``: a packed batch's items' arguments (decoded), each run as its template."""
        requests = batch.requests if args is None else [batch.template] * len(args)
        job = _Job(fid, batch.request_id, requests, batch=True)
        job.args = args
        self._enqueue(job)

    def submit_stream(self, fid: int, request: pb.ExecuteRequest) -> None:
        self._enqueue(_Job(fid, request.request_id, [request], stream=True))

    def credit(self, fid: int, chunks: int) -> bool:
        """The host takes ``chunks`` more of stream ``fid``. False if it is not ours."""
        job = self.jobs.get(fid)
        if job is None or job.out is None:
            return False
        with self._lock:
            job.credit += chunks
            self._credit.notify_all()
        return True

    def _enqueue(self, job: _Job) -> None:
        self.jobs[job.fid] = job
        self._dispatcher.begin(job.request_id)
        with self._lock:
            if not job.batch:   # counted from now; a batch item's from its start
                self._schedule(job, job.cancel)
            # each job is claimed at once by an idle thread, a new one, or the backlog
            start = False
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._max_threads:
                start = True
            else:
                self._backlog += 1
        if start:
            thread = threading.Thread(target=self._context.copy().run, args=(self._work,),
                                      name="snakepit-tool", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._queue.put(job)

    def cancel(self, fid: int) -> bool:
        """The host cancelled request ``fid``: no answer goes out, the tool sees
        ``ctx.cancelled`` (or never starts). False if ``fid`` is not a job of ours."""
        job = self.jobs.get(fid)
        if job is None:
            return False
        if self._claim(job):
            job.cancel.set("cancelled")
            if job.out is not None:
                with self._lock:
                    job.out.entries.clear()   # the host has stopped reading them
                    self._credit.notify_all()
        return True

    # -- tool threads -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                self._finish(job)
                with self._lock:
                    if self._backlog:
                        self._backlog -= 1   # this thread takes a queued job next
                    else:
                        self._idle += 1

    def _run(self, job: _Job) -> None:
        try:
            if job.batch:
                self._run_batch(job)
            elif job.out is not None:
                self._run_stream(job)
            elif not job.cancel.is_set():   # cancelled while queued: never starts
                response = self._dispatcher.run_inline(job.requests[0], job.cancel)
                if self._claim(job):
                    self._reply(job, "result", response)
        except ConnectionError:
            pass   # the host is gone: nobody to answer
        except Exception as exc:   # encoding the result failed (/dev/shm full, ...)
            if self._claim(job):
                self._failed_frame(job.fid, exc)

    def _reply(self, job: _Job, kind: str, message: Any) -> None:
        """Write the job's answer; one that cannot be written (a frame over the limit, a full
        /dev/shm) becomes an error frame, so the request is answered all the same."""
        try:
            self._answer(job.fid, kind, message)
        except ConnectionError:
            raise
        except Exception as exc:
            self._failed_frame(job.fid, exc)

    def _run_batch(self, job: _Job) -> None:
        for n, request in enumerate(job.requests):
            with self._lock:
                if job.answered:
                    return
                cancel = job.cancel = deadline_of(request)
                # one timer entry per batch, not per item: it comes due no later than this
                # item's deadline, and the timer re-arms it for the item running then
                if cancel.deadline is not None and (job.armed is None
                                                    or cancel.deadline < job.armed):
                    job.armed = cancel.deadline
                    self._schedule(job, cancel)
            if job.args is None:
                response = self._dispatcher.run_inline(request, cancel)
            else:
                ok, out = self._dispatcher.call_inline(request, cancel, job.args[n])
                if ok and not job.responses:   # every item so far succeeded: keep the value
                    with self._lock:
                        if job.answered:
                            return
                        job.values.append(out)
                    continue
                response = self._dispatcher.encoded(request.tool, out) if ok else out
                if job.values:   # the values before it become responses
                    earlier = self._as_responses(job)
                    with self._lock:
                        if job.answered:
                            return
                        job.responses[:0] = earlier
                        job.values.clear()
            with self._lock:
                if job.answered:
                    return
                job.responses.append(response)
        if self._claim(job):
            self._reply(job, "results", self._results(job))

    def _as_responses(self, job: _Job) -> list[pb.ExecuteResponse]:
        """A packed batch's values as responses (encoded one by one)."""
        tool = job.requests[0].tool
        return [self._dispatcher.encoded(tool, value) for value in job.values]

    def _results(self, job: _Job, *more: pb.ExecuteResponse) -> pb.ExecuteResults:
        """A batch's answer so far (then ``more``): a packed batch whose items all succeeded
        with plain JSON values as one array, anything else as one response per item. Values
        are kept only while no response is (only the job's thread adds either)."""
        if job.values and not more:
            packed = serialization.encode_plain(job.values)
            if packed is not None:
                return pb.ExecuteResults(packed_json=packed)
        return pb.ExecuteResults(responses=[*self._as_responses(job), *job.responses, *more])

    def _run_stream(self, job: _Job) -> None:
        out = job.out
        assert out is not None

        def take_credit() -> int:
            """All the credit the host has granted (waiting for some); 0: the stream is over
            (cancelled, timed out, or a write failed)."""
            with self._lock:
                while job.credit <= 0 and not job.answered:
                    self._credit.wait()
                if job.answered:
                    return 0
                granted, job.credit = job.credit, 0
                return granted

        def emit(entry: Any) -> None:
            final = type(entry) is not bytes and entry.is_final
            with self._lock:
                if job.answered:
                    return
                job.answered = final
                self._outbox.put(out, entry, final=final)
                if out.pending >= WRITE_AT:
                    self._outbox.write_now(out)

        try:
            if not job.cancel.is_set():   # cancelled while queued: never starts
                self._dispatcher.run_stream_inline(job.requests[0], job.cancel,
                                                   take_credit, emit)
        finally:
            with self._lock:   # its chunks are out before it stops counting as running
                self._outbox.wait_sent(out)

    def _stream_failed(self, fid: int, exc: Exception) -> None:
        """Writing chunks of stream ``fid`` failed: it ends with an error frame."""
        job = self.jobs.get(fid)
        if job is not None:
            with self._lock:
                job.answered = True
                job.cancel.set("cancelled")
                self._credit.notify_all()
        self._failed_frame(fid, exc)

    def _finish(self, job: _Job) -> None:
        self.jobs.pop(job.fid, None)
        self._dispatcher.end(job.request_id)
        with self._lock:
            if not self.jobs:
                self._done.notify_all()

    def _claim(self, job: _Job) -> bool:
        """The right to answer ``job`` (or to decide it gets no answer), taken once."""
        with self._lock:
            if job.answered:
                return False
            job.answered = True
            return True

    # -- deadlines --------------------------------------------------------------------------
    def _schedule(self, job: _Job, cancel: Cancellation) -> None:
        """(lock held) Watch the deadline of ``cancel`` (the job's current call). Entries of
        finished calls stay in the heap until their time comes; the heap is rebuilt when they
        outnumber the live ones."""
        if cancel.deadline is None:
            return
        heap = self._deadlines
        if len(heap) > 256 and len(heap) > 4 * len(self.jobs):
            heap[:] = [e for e in heap if (e[2].cancel is e[3] or e[2].batch)
                       and not e[2].answered and self.jobs.get(e[2].fid) is e[2]]
            heapq.heapify(heap)
        earliest = heap[0][0] if heap else None
        heapq.heappush(heap, (cancel.deadline, next(self._order), job, cancel))
        if self._timer is None:
            self._timer = threading.Thread(target=self._watch, name="snakepit-deadlines",
                                           daemon=True)
            self._timer.start()
        elif earliest is None or cancel.deadline < earliest:
            self._timer_wake.notify()

    def _watch(self) -> None:
        with self._lock:
            while not self._closed:
                heap = self._deadlines
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    _, _, job, cancel = heapq.heappop(heap)
                    if job.batch and job.cancel is not cancel and not job.answered \
                            and self.jobs.get(job.fid) is job:
                        cancel = job.cancel   # the item running now: is it due too?
                        job.armed = cancel.deadline
                        if cancel.deadline is None:
                            continue
                        if cancel.deadline > now:
                            heapq.heappush(heap, (cancel.deadline, next(self._order), job,
                                                  cancel))
                            continue
                    if not job.answered and job.cancel is cancel \
                            and self.jobs.get(job.fid) is job:
                        job.answered = True
                        cancel.set("timeout")
                        if job.out is not None:   # after the chunks already pulled
                            self._outbox.put(job.out, pb.ToolChunk(
                                is_final=True, error=self._dispatcher.timed_out(
                                    job.requests[0]).error), final=True)
                            self._credit.notify_all()
                            continue
                        kind, reply = self._timed_out(job)
                        self._lock.release()   # never write while holding the lock
                        try:
                            self._reply(job, kind, reply)
                        except ConnectionError:
                            pass
                        finally:
                            self._lock.acquire()
                self._timer_wake.wait(heap[0][0] - now if heap else None)

    def _timed_out(self, job: _Job) -> tuple[str, Any]:
        """(lock held) The answer of a job whose current call's deadline passed: a batch's
        results so far (a packed batch's values encoded here), then that call's timeout."""
        done = len(job.values) + len(job.responses)
        if job.batch and done >= len(job.requests):   # its last item returned just now
            return "results", self._results(job)
        timeout = self._dispatcher.timed_out(job.requests[done])
        if not job.batch:
            return "result", timeout
        return "results", self._results(job, timeout)

    # -- shutdown ---------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every job to finish; True if none is left."""
        with self._lock:
            return self._done.wait_for(lambda: not self.jobs, timeout)

    def close(self) -> None:
        """No new jobs; idle threads exit (a tool still running finishes on its own)."""
        with self._lock:
            self._closed = True
            self._timer_wake.notify()
            self._outbox.close()
        for _ in self._threads:
            self._queue.put(None)
