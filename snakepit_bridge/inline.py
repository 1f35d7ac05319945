"""Sync tools of the pipe worker, run on tool threads straight from the pipe's reader thread.

    runner = InlineRunner(dispatcher, answer, threads=4)
    runner.submit(fid, request)     # reader thread: queue it (a request may wait here)
    runner.cancel(fid)              # reader thread: the host gave up on it
    runner.close()

A request for a sync unary tool needs no event loop: the reader thread puts it on a queue, a tool
thread decodes, runs and encodes it and writes the answer itself. That is one thread hop per
call, where going through asyncio costs a loop wake-up, a task and an executor hop each way.

Every job is answered at most once: by its thread (the result), by its deadline (a ``timeout``
error while the tool runs on: it sees ``ctx.cancelled``), or not at all when the host cancelled
it. A job cancelled while it waits in the queue never starts. From submit until its thread is
done with it, a job's request id is in the dispatcher's ``running`` (the heartbeat reports it),
so the host knows when an abandoned tool has really returned.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from typing import Callable

from snakepit_bridge.context import Cancellation
from snakepit_bridge.dispatch import ToolDispatcher, deadline_of
from snakepit_bridge.proto import bridge_pb2 as pb

Answer = Callable[[int, pb.ExecuteResponse], None]


class _Job:
    __slots__ = ("fid", "request", "cancel", "answered")

    def __init__(self, fid: int, request: pb.ExecuteRequest, cancel: Cancellation) -> None:
        self.fid, self.request, self.cancel = fid, request, cancel
        self.answered = False


class InlineRunner:
    """Tool threads (at most ``threads``, started as needed) fed by one queue; see the module
    docstring. ``answer(fid, response)`` writes an answer (from any thread)."""

    def __init__(self, dispatcher: ToolDispatcher, answer: Answer, *, threads: int) -> None:
        self._dispatcher, self._answer = dispatcher, answer
        self._max_threads = max(1, threads)
        self._threads: list[threading.Thread] = []
        self._idle = 0                     # threads waiting for a job nobody claimed yet
        self._backlog = 0                  # jobs queued with no thread to take them yet
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()      # answered flags, idle count, the deadline heap
        self.jobs: dict[int, _Job] = {}    # fid -> job, until its thread is done with it
        self._done = threading.Condition(self._lock)
        self._deadlines: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()
        self._timer_wake = threading.Condition(self._lock)
        self._timer: threading.Thread | None = None
        self._closed = False

    # -- reader thread ----------------------------------------------------------------------
    def submit(self, fid: int, request: pb.ExecuteRequest) -> None:
        job = _Job(fid, request, deadline_of(request))
        self.jobs[fid] = job
        self._dispatcher.begin(request.request_id)
        with self._lock:
            if job.cancel.deadline is not None:
                self._schedule(job)
            # each job is claimed at once by an idle thread, a new one, or the backlog
            start = False
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._max_threads:
                start = True
            else:
                self._backlog += 1
        if start:
            thread = threading.Thread(target=self._work, name="snakepit-tool", daemon=True)
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
        return True

    # -- tool threads -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if not job.cancel.is_set():   # cancelled while queued: never starts
                    response = self._dispatcher.run_inline(job.request, job.cancel)
                    if self._claim(job):
                        self._answer(job.fid, response)
            except ConnectionError:
                pass   # the host is gone: nobody to answer
            finally:
                self._finish(job)

    def _finish(self, job: _Job) -> None:
        self.jobs.pop(job.fid, None)
        self._dispatcher.end(job.request.request_id)
        with self._lock:
            if self._backlog:
                self._backlog -= 1   # this thread takes a queued job next
            else:
                self._idle += 1
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
    def _schedule(self, job: _Job) -> None:
        """(lock held) Watch the job's deadline. Entries of finished jobs stay in the heap
        until their time comes; the heap is rebuilt when they outnumber the live ones."""
        assert job.cancel.deadline is not None
        heap = self._deadlines
        if len(heap) > 256 and len(heap) > 4 * len(self.jobs):
            heap[:] = [e for e in heap if e[2].fid in self.jobs and not e[2].answered]
            heapq.heapify(heap)
        earliest = heap[0][0] if heap else None
        heapq.heappush(heap, (job.cancel.deadline, next(self._order), job))
        if self._timer is None:
            self._timer = threading.Thread(target=self._watch, name="snakepit-deadlines",
                                           daemon=True)
            self._timer.start()
        elif earliest is None or job.cancel.deadline < earliest:
            self._timer_wake.notify()

    def _watch(self) -> None:
        with self._lock:
            while not self._closed:
                heap = self._deadlines
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    job = heapq.heappop(heap)[2]
                    if not job.answered and self.jobs.get(job.fid) is job:
                        job.answered = True
                        job.cancel.set("timeout")
                        self._lock.release()   # never write while holding the lock
                        try:
                            self._answer(job.fid, self._dispatcher.timed_out(job.request))
                        except ConnectionError:
                            pass
                        finally:
                            self._lock.acquire()
                self._timer_wake.wait(heap[0][0] - now if heap else None)

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
        for _ in self._threads:
            self._queue.put(None)
