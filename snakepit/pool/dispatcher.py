"""Checkout of workers for requests: free slots, a FIFO queue, session affinity.

    dispatcher = Dispatcher("default", max_queue_size=1000, queue_timeout=10.0, affinity="hint")
    dispatcher.add_worker(worker)              # a ready worker offers `capacity` slots
    worker = await dispatcher.checkout(session_id="s1")
    try:
        ...                                    # run the request on it
    finally:
        dispatcher.checkin(worker)

No task per request and no lock: every operation is synchronous bookkeeping on the trio thread;
only a request that finds no free slot waits, on an event of its own. A freed slot goes straight
to the first waiter that can take it (FIFO), so a queued request is never overtaken. A request
that waits past ``queue_timeout`` fails with :class:`QueueTimeout` and never runs: if a slot
was handed to it at the same instant, the slot is passed on before the error is raised.
"""

from __future__ import annotations

import collections
import enum
from typing import Protocol

import trio

from snakepit.errors import (PoolSaturated, QueueTimeout, SessionWorkerUnavailable,
                             ShuttingDown, WorkerBusy)


class Affinity(str, enum.Enum):
    HINT = "hint"
    STRICT_QUEUE = "strict_queue"
    STRICT_FAIL_FAST = "strict_fail_fast"


class Slotted(Protocol):
    """What the dispatcher needs of a worker; it keeps ``in_flight`` and ``requests`` itself."""

    key: str          # unique per worker process (id + incarnation)
    id: str
    capacity: int
    in_flight: int
    requests: int


class _Waiter:
    __slots__ = ("wants", "event", "worker", "error")

    def __init__(self, wants: str | None) -> None:
        self.wants = wants
        self.event = trio.Event()
        self.worker: Slotted | None = None
        self.error: Exception | None = None


class Dispatcher:
    def __init__(self, pool: str, *, max_queue_size: int, queue_timeout: float,
                 affinity: Affinity | str = Affinity.HINT) -> None:
        self.pool = pool
        self.max_queue_size = max_queue_size
        self.queue_timeout = queue_timeout
        self.affinity = Affinity(affinity)
        self._workers: dict[str, Slotted] = {}
        self._accepting: set[str] = set()
        self._drained: dict[str, trio.Event] = {}
        self._free: collections.deque[Slotted] = collections.deque()
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._affinity: dict[str, str] = {}
        self._served: dict[str, set[str]] = {}   # session -> worker keys that served it
        self._closed = False
        self.queue_timeouts = 0
        self.pool_saturated = 0
        self.checkouts = 0

    # -- workers joining and leaving --------------------------------------------------------
    def add_worker(self, worker: Slotted) -> None:
        """A ready worker: its free capacity goes to waiters first, then to the free list."""
        self._workers[worker.key] = worker
        self._accepting.add(worker.key)
        for _ in range(worker.capacity - worker.in_flight):
            self._offer(worker)

    def drain_worker(self, worker: Slotted) -> trio.Event:
        """Stop handing ``worker`` out; the returned event is set once it has no request."""
        self._accepting.discard(worker.key)
        done = self._drained.setdefault(worker.key, trio.Event())
        if worker.in_flight == 0:
            done.set()
        return done

    def remove_worker(self, worker: Slotted) -> None:
        """The worker is gone; requests waiting for it specifically (strict affinity) fail."""
        self._accepting.discard(worker.key)
        self._workers.pop(worker.key, None)
        self._drained.pop(worker.key, None)
        for waiter in [w for w in self._queue if w.wants == worker.key]:
            self._queue.remove(waiter)
            waiter.error = SessionWorkerUnavailable.gone(None, worker.id, self.pool)
            waiter.event.set()

    def close(self) -> None:
        """Shutting down: every queued and future checkout fails with ShuttingDown."""
        self._closed = True
        while self._queue:
            waiter = self._queue.popleft()
            waiter.error = ShuttingDown(f"pool {self.pool!r} is shutting down")
            waiter.event.set()

    def forget_session(self, session_id: str) -> list[Slotted]:
        """Drop the session's affinity; returns the live workers that served it."""
        self._affinity.pop(session_id, None)
        keys = self._served.pop(session_id, set())
        return [self._workers[k] for k in keys if k in self._workers]

    def session_worker(self, session_id: str) -> Slotted | None:
        key = self._affinity.get(session_id)
        return self._workers.get(key) if key is not None else None

    # -- requests ---------------------------------------------------------------------------
    async def checkout(self, session_id: str | None = None) -> Slotted:
        """A worker with a free slot for one request (waiting in the queue if need be)."""
        if self._closed:
            raise ShuttingDown(f"pool {self.pool!r} is shutting down")
        wants: str | None = None
        if session_id is not None and session_id in self._affinity:
            key = self._affinity[session_id]
            if key not in self._accepting:
                if self.affinity is not Affinity.HINT:
                    raise SessionWorkerUnavailable.gone(session_id, key, self.pool)
            else:
                bound = self._workers[key]
                if bound.in_flight < bound.capacity:
                    self._free.remove(bound)
                    return self._take(bound, session_id)
                if self.affinity is Affinity.STRICT_FAIL_FAST:
                    raise WorkerBusy(f"the worker of session {session_id!r} is busy",
                                     details={"pool": self.pool, "worker": bound.id,
                                              "session_id": session_id})
                if self.affinity is Affinity.STRICT_QUEUE:
                    wants = key
        if wants is None:
            while self._free:
                worker = self._free.popleft()
                if worker.key in self._accepting:
                    return self._take(worker, session_id)
        return self._take(await self._wait(wants), session_id, counted=True)

    def checkin(self, worker: Slotted) -> None:
        """The request on ``worker`` is over (whatever its outcome)."""
        worker.in_flight -= 1
        if worker.key in self._accepting:
            self._offer(worker)
        elif worker.in_flight == 0 and worker.key in self._drained:
            self._drained[worker.key].set()

    # -- internals --------------------------------------------------------------------------
    def _take(self, worker: Slotted, session_id: str | None, counted: bool = False) -> Slotted:
        if not counted:
            worker.in_flight += 1
        worker.requests += 1
        self.checkouts += 1
        if session_id is not None:
            self._affinity[session_id] = worker.key
            self._served.setdefault(session_id, set()).add(worker.key)
        return worker

    def _offer(self, worker: Slotted) -> None:
        for waiter in self._queue:
            if waiter.wants is None or waiter.wants == worker.key:
                self._queue.remove(waiter)
                worker.in_flight += 1   # counted now, so that nobody else takes the slot
                waiter.worker = worker
                waiter.event.set()
                return
        self._free.append(worker)

    async def _wait(self, wants: str | None) -> Slotted:
        if len(self._queue) >= self.max_queue_size:
            self.pool_saturated += 1
            raise PoolSaturated(
                f"pool {self.pool!r} queue is full ({self.max_queue_size} waiting)",
                details={"pool": self.pool, "max_queue_size": self.max_queue_size})
        waiter = _Waiter(wants)
        self._queue.append(waiter)
        try:
            with trio.move_on_after(self.queue_timeout) as scope:
                await waiter.event.wait()
        except BaseException:
            self._abandon(waiter)   # the caller was cancelled
            raise
        if scope.cancelled_caught:
            self._abandon(waiter)   # a slot handed over at the deadline is passed on
            self.queue_timeouts += 1
            raise QueueTimeout(
                f"no worker of pool {self.pool!r} became free within "
                f"queue_timeout={self.queue_timeout} s",
                details={"pool": self.pool, "queue_timeout": self.queue_timeout})
        if waiter.error is not None:
            raise waiter.error
        assert waiter.worker is not None
        return waiter.worker

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.worker is not None:
            self.checkin(waiter.worker)
        elif waiter.error is None:
            self._queue.remove(waiter)

    # -- introspection ----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def available(self) -> int:
        """Free slots across accepting workers."""
        return sum(max(0, w.capacity - w.in_flight) for k, w in self._workers.items()
                   if k in self._accepting)

    @property
    def busy(self) -> int:
        """Workers with at least one request in flight."""
        return sum(1 for w in self._workers.values() if w.in_flight > 0)

    def workers(self) -> list[Slotted]:
        return list(self._workers.values())

    def accepting(self, worker: Slotted) -> bool:
        return worker.key in self._accepting
