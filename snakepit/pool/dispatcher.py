"""Checkout of workers for requests: a FIFO queue and session affinity over the pool's roster.

    dispatcher = Dispatcher(roster, max_queue_size=1000, queue_timeout=10.0, affinity="hint")
    worker = await dispatcher.checkout(session_id="s1")
    try:
        ...                                    # run the request on it
    finally:
        roster.release(worker)

The dispatcher owns no capacity: free slots and worker states live in the
:class:`~snakepit.pool.roster.Roster`, which outlives a restarted dispatcher. The dispatcher
keeps who waits and which worker serves which session. No task per request and no lock: a
request that finds no free slot waits in the queue, its task parked (woken directly); a freed
slot goes straight to the first waiter that can take it (FIFO), so a queued request is never
overtaken. A request that
waits past ``queue_timeout`` fails with :class:`QueueTimeout` and never runs: a slot handed to
it at the same instant is passed on before the error is raised.
"""

from __future__ import annotations

import collections
import enum
import math
from typing import Any

import trio

from snakepit.deadlines import run_deadlines
from snakepit.errors import (DeadlinePassed, PoolSaturated, QueueTimeout,
                             SessionWorkerUnavailable, ShuttingDown, WorkerBusy)
from snakepit.pool.roster import Entry, Member, Roster, WorkerState


class Affinity(str, enum.Enum):
    HINT = "hint"
    STRICT_QUEUE = "strict_queue"
    STRICT_FAIL_FAST = "strict_fail_fast"


class _Waiter:
    """A checkout waiting in the queue. Woken once, having left the queue, with a worker's
    slot (``entry``), an ``error``, or its deadline passed (``expired``): its task is
    rescheduled directly (no Event), and its deadline is an entry in the run's
    :class:`~snakepit.deadlines.Deadlines` (no cancel scope)."""
    __slots__ = ("wants", "task", "queue", "entry", "error", "expired", "woken")

    def __init__(self, wants: str | None, queue: "collections.deque[_Waiter]") -> None:
        self.wants = wants
        self.task = trio.lowlevel.current_task()
        self.queue = queue
        self.entry: Entry | None = None
        self.error: Exception | None = None
        self.expired = self.woken = False

    def wake(self) -> None:
        if not self.woken:
            self.woken = True
            trio.lowlevel.reschedule(self.task)

    def expire(self) -> None:
        if not self.woken:
            self.queue.remove(self)
            self.expired = True
            self.wake()

    def abort(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self.woken = True   # cancelled while queued: it leaves the queue itself
        return trio.lowlevel.Abort.SUCCEEDED


class Dispatcher:
    def __init__(self, roster: Roster, *, max_queue_size: int, queue_timeout: float,
                 affinity: Affinity | str = Affinity.HINT) -> None:
        self.roster = roster
        self.pool = roster.pool
        self.max_queue_size = max_queue_size
        self.queue_timeout = queue_timeout
        self.affinity = Affinity(affinity)
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._affinity: dict[str, str] = {}      # session -> worker key
        self._served: dict[str, set[str]] = {}   # session -> worker keys that served it
        self._closed = False
        self._deadlines = run_deadlines()
        self.queue_timeouts = 0
        self.pool_saturated = 0
        # This dispatcher takes over: freed slots and departures come here from now on, and
        # the capacity already free is there to take.
        roster.offer = self._offer
        roster.left_rotation = self._left_rotation

    def close(self) -> None:
        """Shutting down: every queued and future checkout fails with ShuttingDown."""
        self._closed = True
        if self.roster.offer == self._offer:
            self.roster.offer = lambda entry: False
        while self._queue:
            waiter = self._queue.popleft()
            waiter.error = ShuttingDown(f"pool {self.pool!r} is shutting down")
            waiter.wake()

    def forget_session(self, session_id: str) -> list[Member]:
        """Drop the session's affinity; returns the live workers that served it."""
        self._affinity.pop(session_id, None)
        keys = self._served.pop(session_id, set())
        entries = self.roster.entries
        return [entries[k].worker for k in keys
                if k in entries and entries[k].state in (WorkerState.READY,
                                                         WorkerState.CANCELLING,
                                                         WorkerState.DRAINING)]

    # -- requests ---------------------------------------------------------------------------
    async def checkout(self, session_id: str | None = None, deadline: float = math.inf
                       ) -> Member:
        """A worker with a free slot for one request (waiting in the queue if need be, until
        ``queue_timeout`` passes (QueueTimeout) or the call's ``deadline`` (trio time) does,
        whichever comes first (DeadlinePassed))."""
        if self._closed:
            raise ShuttingDown(f"pool {self.pool!r} is shutting down")
        wants: str | None = None
        if session_id is not None and session_id in self._affinity:
            key = self._affinity[session_id]
            bound = self.roster.entries.get(key)
            if bound is None or bound.state not in (WorkerState.READY,
                                                    WorkerState.CANCELLING):
                if self.affinity is not Affinity.HINT:
                    raise SessionWorkerUnavailable.gone(session_id, key, self.pool)
            elif self.roster.take(bound):
                return self._bind(bound, session_id)
            elif self.affinity is Affinity.STRICT_FAIL_FAST:
                raise WorkerBusy(f"the worker of session {session_id!r} is busy",
                                 details={"pool": self.pool, "worker": bound.worker.id,
                                          "session_id": session_id})
            elif self.affinity is Affinity.STRICT_QUEUE:
                if not self._queue and self.roster.take_ahead(bound):
                    return self._bind(bound, session_id)
                wants = key
        if wants is None:
            entry = self.roster.take_free()
            if entry is None and not self._queue:
                entry = self.roster.take_ahead()
            if entry is not None:
                return self._bind(entry, session_id)
        return self._bind(await self._wait(wants, deadline), session_id)

    # -- internals --------------------------------------------------------------------------
    def _bind(self, entry: Entry, session_id: str | None) -> Member:
        if session_id is not None:
            self._affinity[session_id] = entry.worker.key
            self._served.setdefault(session_id, set()).add(entry.worker.key)
        return entry.worker

    def _offer(self, entry: Entry) -> bool:
        for waiter in self._queue:
            if waiter.wants is None or waiter.wants == entry.worker.key:
                self._queue.remove(waiter)
                self.roster.lease(entry)   # counted now, so that nobody else takes the slot
                waiter.entry = entry
                waiter.wake()
                return True
        return False

    def _left_rotation(self, entry: Entry) -> None:
        """Requests waiting for this worker specifically (strict affinity) fail now unless it
        is only pausing (CANCELLING: it comes back once the worker confirms)."""
        if entry.state is WorkerState.CANCELLING:
            return
        for waiter in [w for w in self._queue if w.wants == entry.worker.key]:
            self._queue.remove(waiter)
            waiter.error = SessionWorkerUnavailable.gone(None, entry.worker.id, self.pool)
            waiter.wake()

    async def _wait(self, wants: str | None, deadline: float) -> Entry:
        if len(self._queue) >= self.max_queue_size:
            self.pool_saturated += 1
            raise PoolSaturated(
                f"pool {self.pool!r} queue is full ({self.max_queue_size} waiting)",
                details={"pool": self.pool, "max_queue_size": self.max_queue_size})
        waiter = _Waiter(wants, self._queue)
        self._queue.append(waiter)
        queue_deadline = trio.current_time() + self.queue_timeout
        ends = min(queue_deadline, deadline)
        timer = self._deadlines.add(ends, waiter.expire)
        try:
            await trio.lowlevel.wait_task_rescheduled(waiter.abort)
        except BaseException:
            self._abandon(waiter)   # the caller was cancelled
            raise
        finally:
            self._deadlines.drop(timer)
        if waiter.entry is not None and trio.current_time() >= ends:
            self._abandon(waiter)   # a slot handed over at the deadline is passed on
            waiter.expired = True
        if waiter.expired:
            if deadline < queue_deadline:
                raise DeadlinePassed(f"the call's deadline passed while it waited for a "
                                     f"worker of pool {self.pool!r}",
                                     details={"pool": self.pool})
            self.queue_timeouts += 1
            raise QueueTimeout(
                f"no worker of pool {self.pool!r} became free within "
                f"queue_timeout={self.queue_timeout} s",
                details={"pool": self.pool, "queue_timeout": self.queue_timeout})
        if waiter.error is not None:
            raise waiter.error
        assert waiter.entry is not None
        return waiter.entry

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.entry is not None:
            self.roster.release(waiter.entry.worker, ran=False)
        elif waiter.error is None and not waiter.expired:
            self._queue.remove(waiter)

    # -- introspection ----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)
