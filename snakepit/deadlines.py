"""Deadlines: the deadlines of many waiting calls, kept by one timer task.

    deadlines = run_deadlines()     # this trio run's: its timer runs as a system task
    entry = deadlines.add(trio.current_time() + 30, on_expiry)   # a heap push
    ...                                                           # the answer came first:
    deadlines.drop(entry)                                         # on_expiry is never called

A call that waits for its answer with a deadline of its own would enter a trio cancel scope
with that deadline: about 8-10 µs to enter and leave on the project's 2-core VM, more than the
rest of a pipe call's wait. Here a call pushes its deadline on a heap instead, and the one
timer task sleeps until the earliest; when it wakes, it calls ``on_expiry`` of every deadline
that has passed and was not dropped, in deadline order. ``on_expiry`` runs in the timer task
and must not block (it reschedules the waiting call). Dropped deadlines stay in the heap until
they come up or the heap is compacted (when it holds four times as many entries as live ones),
so a dropped deadline costs nothing more than its push. An ``on_expiry`` that raises is a bug:
it is logged, and the other deadlines still expire.

Used by the pipe transport (a call's wait for its answer) and the dispatcher (a call's wait for
a worker).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from typing import Callable

import trio

log = logging.getLogger("snakepit.deadlines")

COMPACT_AT = 64   # entries in the heap before a compaction is considered


class Entry:
    __slots__ = ("expire",)

    def __init__(self, expire: Callable[[], None] | None) -> None:
        self.expire = expire


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Entry]] = []
        self._seq = itertools.count()
        self._live = 0
        self._scope: trio.CancelScope | None = None   # the timer's sleep, until the earliest

    def __len__(self) -> int:
        """Deadlines added and neither dropped nor expired."""
        return self._live

    def add(self, deadline: float, expire: Callable[[], None]) -> Entry:
        entry = Entry(expire)
        heapq.heappush(self._heap, (deadline, next(self._seq), entry))
        self._live += 1
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline
        return entry

    def drop(self, entry: Entry) -> None:
        """The call ended before its deadline (idempotent)."""
        if entry.expire is None:
            return
        entry.expire = None
        self._live -= 1
        heap = self._heap
        if len(heap) > COMPACT_AT and len(heap) > 4 * self._live:
            self._heap = [item for item in heap if item[2].expire is not None]
            heapq.heapify(self._heap)

    async def run(self) -> None:
        """The timer task: runs until cancelled."""
        while True:
            heap = self._heap
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._scope:
                await trio.sleep_forever()
            now = trio.current_time()
            heap = self._heap
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)[2]
                expire, entry.expire = entry.expire, None
                if expire is not None:
                    self._live -= 1
                    try:
                        expire()
                    except Exception:   # a bug in the waiter; the timer must go on
                        log.exception("a deadline's on_expiry failed")


_RUN: trio.lowlevel.RunVar[Deadlines] = trio.lowlevel.RunVar("snakepit_deadlines")


def run_deadlines() -> Deadlines:
    """The current trio run's Deadlines, its timer started (as a system task: it lives as
    long as the run) the first time it is asked for."""
    try:
        return _RUN.get()
    except LookupError:
        deadlines = Deadlines()
        trio.lowlevel.spawn_system_task(deadlines.run, name="snakepit deadlines")
        _RUN.set(deadlines)
        return deadlines
