"""Roster: the one owner of every worker's state and free capacity in a pool.

    roster = Roster("default", max_requests=None)
    roster.starting(worker)        # STARTING
    roster.ready(worker)           # READY: its capacity is offered (to the dispatcher first)
    entry = roster.take_free()     # the READY worker freed last, leased (or None)
    entry = roster.take_ahead()    # none free: the READY worker with the shortest line, if
                                   #   its line is shorter than ``pipeline`` (ADR 0003)
    roster.release(worker)         # the request is over: the slot is free again
    roster.abandon(worker)         # a request timed out / was cancelled: CANCELLING until
    roster.confirmed(worker, 1)    #   the worker confirms the tool ended
    roster.drain(worker)           # DRAINING: no new requests; event set when idle
    roster.leaving(worker)         # STOPPING: out of rotation for good
    roster.stopped(worker)         # STOPPED (or FAILED if it never became ready)

Every state change and every change of ``in_flight``/``requests`` happens in this module, on
the trio thread, synchronously: the dispatcher, the call path, the starter and the lifecycle
manager ask and tell the roster instead of keeping copies. The roster belongs to the pool's
runtime, not to a dispatcher, so a dispatcher that is restarted finds every worker's capacity
where it was (requests in flight during the restart check in here). The transitions, and what
users see of them (``app.workers()[i]["state"]``), are listed in ADR/0002.
"""

from __future__ import annotations

import collections
import enum
from typing import Callable, Protocol

import trio


class WorkerState(str, enum.Enum):
    STARTING = "starting"        # spawned, not yet ready
    READY = "ready"              # in rotation
    CANCELLING = "cancelling"    # out of rotation until the worker confirms an abandoned tool ended
    DRAINING = "draining"        # out of rotation for good (recycle); in-flight work finishes
    STOPPING = "stopping"        # being stopped
    STOPPED = "stopped"          # gone after having been ready
    FAILED = "failed"            # never became ready


ALIVE = frozenset({WorkerState.READY, WorkerState.CANCELLING, WorkerState.DRAINING})

# state -> the states it may move to (anything else is a bug in the caller)
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STARTING: frozenset({WorkerState.READY, WorkerState.FAILED,
                                     WorkerState.STOPPING}),
    WorkerState.READY: frozenset({WorkerState.CANCELLING, WorkerState.DRAINING,
                                  WorkerState.STOPPING}),
    WorkerState.CANCELLING: frozenset({WorkerState.READY, WorkerState.DRAINING,
                                       WorkerState.STOPPING}),
    WorkerState.DRAINING: frozenset({WorkerState.STOPPING}),
    WorkerState.STOPPING: frozenset({WorkerState.STOPPED, WorkerState.FAILED}),
    WorkerState.STOPPED: frozenset(),
    WorkerState.FAILED: frozenset(),
}


class Member(Protocol):
    """What the roster needs of a worker."""

    key: str          # unique per process (slot id + incarnation)
    id: str           # the slot
    capacity: int


class Entry:
    """One worker's record. Read it anywhere; only :class:`Roster` writes it."""

    __slots__ = ("worker", "state", "in_flight", "requests", "abandoned", "idle")

    def __init__(self, worker: Member) -> None:
        self.worker = worker
        self.state = WorkerState.STARTING
        self.in_flight = 0          # leases not yet released (abandoned ones included)
        self.requests = 0           # requests handed to this process
        self.abandoned = 0          # leases whose caller gave up; released on confirmation
        self.idle = trio.Event()    # set while in_flight == 0 once draining

    @property
    def free(self) -> int:
        return self.worker.capacity - self.in_flight if self.state is WorkerState.READY else 0

    def ahead(self, pipeline: int) -> int:
        """How many more requests may be sent to wait inside this worker (its slots full)."""
        if self.state is not WorkerState.READY:
            return 0
        return min(pipeline, self.worker.capacity + pipeline - self.in_flight)


class Roster:
    def __init__(self, pool: str, *, max_requests: int | None = None,
                 pipeline: int = 0) -> None:
        self.pool = pool
        self.max_requests = max_requests
        # requests a worker whose slots are all taken may hold waiting, besides (pipelining)
        self.pipeline = pipeline
        self.entries: dict[str, Entry] = {}
        # One item per free slot of a READY worker, taken last-in first-out: the next request
        # goes to the worker freed most recently, whose process has slept the least (on a
        # VM a longer sleep costs a worker more CPU to wake; ADR 0002). A worker leaving
        # rotation takes its items with it; any stale item left is skipped when taken.
        self._free: collections.deque[Entry] = collections.deque()
        # Hooks of the current dispatcher and of the pool's starters.
        # offer(entry): give one free slot of entry to a waiter (leasing it) -> taken?
        self.offer: Callable[[Entry], bool] = lambda entry: False
        self.left_rotation: Callable[[Entry], None] = lambda entry: None
        self.limit_reached: Callable[[Member], None] = lambda worker: None
        self.abandoned_hook: Callable[[Member], None] = lambda worker: None

    # -- reading ----------------------------------------------------------------------------
    def entry(self, worker: Member) -> Entry | None:
        return self.entries.get(worker.key)

    def state(self, worker: Member) -> WorkerState:
        entry = self.entries.get(worker.key)
        return entry.state if entry is not None else WorkerState.STOPPED

    @property
    def available(self) -> int:
        return sum(e.free for e in self.entries.values())

    @property
    def busy(self) -> int:
        return sum(1 for e in self.entries.values() if e.in_flight > 0)

    # -- transitions ------------------------------------------------------------------------
    def _move(self, entry: Entry, to: WorkerState) -> None:
        if to not in TRANSITIONS[entry.state]:
            raise AssertionError(f"worker {entry.worker.key}: {entry.state.value} -> "
                                 f"{to.value} is not a transition")
        was_in_rotation = entry.state is WorkerState.READY
        entry.state = to
        if was_in_rotation and to is not WorkerState.READY:
            if entry in self._free:   # (last-in first-out: the bottom may never be reached)
                self._free = collections.deque(e for e in self._free if e is not entry)
            self.left_rotation(entry)

    def starting(self, worker: Member) -> Entry:
        entry = self.entries[worker.key] = Entry(worker)
        return entry

    def ready(self, worker: Member) -> None:
        entry = self.entries[worker.key]
        self._move(entry, WorkerState.READY)
        self._offer_free(entry)

    def drain(self, worker: Member) -> trio.Event:
        """Out of rotation for good; the event is set once no lease is left."""
        entry = self.entries[worker.key]
        if entry.state in (WorkerState.READY, WorkerState.CANCELLING):
            self._move(entry, WorkerState.DRAINING)
        self._check_idle(entry)
        return entry.idle

    def leaving(self, worker: Member) -> None:
        """The worker is being stopped (crash, kill, stop): out of rotation now."""
        entry = self.entries.get(worker.key)
        if entry is None or entry.state in (WorkerState.STOPPING, WorkerState.STOPPED,
                                            WorkerState.FAILED):
            return
        self._move(entry, WorkerState.STOPPING)

    def stopped(self, worker: Member) -> None:
        """The process is gone: FAILED if it never became ready, else STOPPED."""
        entry = self.entries.pop(worker.key, None)
        if entry is None:
            return
        never_ready = entry.state is WorkerState.STARTING
        if entry.state is not WorkerState.STOPPING:
            self._move(entry, WorkerState.STOPPING)
        self._move(entry, WorkerState.FAILED if never_ready else WorkerState.STOPPED)
        entry.idle.set()

    # -- leases -----------------------------------------------------------------------------
    def take_free(self) -> Entry | None:
        while self._free:
            entry = self._free.pop()
            if entry.free > 0 and self.entries.get(entry.worker.key) is entry:
                self.lease(entry)
                return entry
        return None

    def take(self, entry: Entry) -> bool:
        """Lease a slot of this particular worker, if it has a free one."""
        if entry.free <= 0:
            return False
        try:
            self._free.remove(entry)
        except ValueError:
            pass
        self.lease(entry)
        return True

    def take_ahead(self, entry: Entry | None = None) -> Entry | None:
        """With no free slot anywhere: lease a place in the line of the READY worker with the
        shortest line (or of ``entry``), if it is shorter than ``pipeline``; else None."""
        if not self.pipeline:
            return None
        if entry is None:
            lines = [e for e in self.entries.values() if e.ahead(self.pipeline) > 0]
            if not lines:
                return None
            entry = min(lines, key=lambda e: e.in_flight - e.worker.capacity)
        elif entry.ahead(self.pipeline) <= 0:
            return None
        self.lease(entry)
        return entry

    def lease(self, entry: Entry) -> None:
        """Count a request on ``entry`` (its slot is already taken off the free list)."""
        entry.in_flight += 1
        entry.requests += 1
        if self.max_requests is not None and entry.requests >= self.max_requests \
                and entry.state in (WorkerState.READY, WorkerState.CANCELLING):
            # The limit is reached as the last request is handed out: out of rotation now,
            # so no process ever serves more than max_requests; its in-flight work finishes.
            self._move(entry, WorkerState.DRAINING)
            self.limit_reached(entry.worker)

    def release(self, worker: Member, *, ran: bool = True) -> None:
        """A lease on ``worker`` is over, whatever its outcome (``ran=False``: the request was
        never sent, so it does not count towards ``max_requests``)."""
        entry = self.entries.get(worker.key)
        if entry is None:
            return
        entry.in_flight -= 1
        if not ran:
            entry.requests -= 1
        if entry.state is WorkerState.READY:
            self._offer_free(entry, 1)
        else:
            self._check_idle(entry)

    def abandon(self, worker: Member) -> None:
        """The caller of a request on ``worker`` gave up (timeout, cancellation) while the tool
        may still run: the lease stays taken, and the worker leaves rotation until it confirms
        (:meth:`confirmed`) or is killed."""
        entry = self.entries.get(worker.key)
        if entry is None or entry.state not in ALIVE:
            return
        entry.abandoned += 1
        if entry.state is WorkerState.READY:
            self._move(entry, WorkerState.CANCELLING)
        self.abandoned_hook(worker)

    def confirmed(self, worker: Member, count: int = 1) -> None:
        """The worker reports that ``count`` of its abandoned tools have ended; with none left
        it is back in rotation."""
        entry = self.entries.get(worker.key)
        if entry is None or entry.abandoned == 0:
            return
        count = min(count, entry.abandoned)
        entry.in_flight -= count
        entry.abandoned -= count
        if entry.abandoned:
            return
        if entry.state is WorkerState.CANCELLING:
            self._move(entry, WorkerState.READY)
            self._offer_free(entry)
        else:
            self._check_idle(entry)

    # -- internals --------------------------------------------------------------------------
    def _offer_free(self, entry: Entry, slots: int | None = None) -> None:
        """Free slots go to the dispatcher's waiters first (``offer`` leases what it takes),
        then to the free list. Places in the worker's line (pipelining) go only to waiters:
        a new request finds them with :meth:`take_ahead`."""
        for _ in range(entry.free if slots is None else slots):
            if entry.free <= 0:
                break
            if not self.offer(entry):
                self._free.append(entry)
        while entry.free <= 0 and entry.ahead(self.pipeline) > 0 and self.offer(entry):
            pass

    def _check_idle(self, entry: Entry) -> None:
        if entry.in_flight == 0 and entry.state is not WorkerState.READY:
            entry.idle.set()
