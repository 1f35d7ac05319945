"""WorkerStarter: keeps one pool slot served by a live worker, whatever happens to it.

Crashes stop here (ADR 0002): a worker that dies is restarted at once; a worker that keeps
failing to start is retried with capped exponential backoff and the slot is reported
``degraded`` after ``DEGRADED_AFTER`` failed starts in a row. Nothing a worker process does
makes this task fail, so worker crashes never count against the supervisors above.

Recycling happens here too, without a gap: the replacement starts first and joins the pool
(the recycle is counted then), then the old worker drains its in-flight requests and stops, in
the background, while this starter already watches the replacement.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from snakepit import otp
from snakepit.errors import SnakepitError
from snakepit.pool.worker import Worker

if TYPE_CHECKING:
    from snakepit.pool.runtime import PoolRuntime

log = logging.getLogger("snakepit.pool.starter")

BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0
DEGRADED_AFTER = 3


def backoff(failures: int) -> float:
    """Delay before the next start after ``failures`` failed starts in a row (0 = at once)."""
    if failures <= 0:
        return 0.0
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1)))


class Slot:
    """One place in the pool (``<pool>-<n>``) and what its starter knows about it."""

    def __init__(self, slot_id: str) -> None:
        self.id = slot_id
        self.incarnations = 0
        self.current: Worker | None = None
        self.newest: Worker | None = None   # the last incarnation made; current once started
        self.failures = 0               # failed starts in a row
        self.last_error: SnakepitError | None = None
        self.recycle_reason: str | None = None
        self.wake = trio.Event()

    @property
    def degraded(self) -> bool:
        return self.failures >= DEGRADED_AFTER

    def request_recycle(self, reason: str) -> None:
        if self.recycle_reason is None:
            self.recycle_reason = reason
            self.wake.set()

    def next_worker(self, runtime: "PoolRuntime") -> Worker:
        self.incarnations += 1
        self.newest = Worker(runtime, self.id, self.incarnations)
        return self.newest


async def _start(runtime: "PoolRuntime", slot: Slot, nursery: trio.Nursery) -> Worker | None:
    worker = slot.next_worker(runtime)
    try:
        await nursery.start(worker.run)
    except BaseException as group:
        exc = otp.unwrap_group(group)
        if not isinstance(exc, SnakepitError):
            raise
        slot.failures += 1
        slot.last_error = exc
        runtime.start_failed(slot, exc)
        return None
    slot.failures = 0
    slot.last_error = None
    runtime.worker_ready(worker)
    return worker


async def worker_starter(runtime: "PoolRuntime", slot_id: str, *,
                         task_status: trio.TaskStatus[Slot] = trio.TASK_STATUS_IGNORED
                         ) -> None:
    slot = runtime.add_slot(slot_id)
    task_status.started(slot)
    try:
        async with trio.open_nursery() as nursery:
            while True:
                worker = await _start(runtime, slot, nursery)
                if worker is None:
                    await trio.sleep(backoff(slot.failures))
                    continue
                slot.current = worker
                await _serve(runtime, slot, worker, nursery)
    finally:
        runtime.remove_slot(slot)


async def _serve(runtime: "PoolRuntime", slot: Slot, worker: Worker,
                 nursery: trio.Nursery) -> None:
    """Until ``worker`` is gone; replaces it in place when a recycle is requested."""
    while True:
        slot.wake = trio.Event()
        if slot.recycle_reason is None and not worker.exited.is_set():
            async with trio.open_nursery() as waits:
                waits.start_soon(_set_on, worker.exited, slot)
                await slot.wake.wait()
                waits.cancel_scope.cancel()
        if worker.exited.is_set():
            runtime.worker_restarting(worker)
            return
        reason, slot.recycle_reason = slot.recycle_reason, None
        replacement = await _start(runtime, slot, nursery)
        if replacement is None:
            # The old worker keeps serving if it still may (ttl, memory); one out of rotation
            # (max_requests) serves nobody meanwhile: retry with the same backoff as a start.
            log.warning("recycling %s (%s): replacement failed to start; retrying",
                        worker.key, reason)
            await trio.sleep(backoff(slot.failures))
            slot.request_recycle(reason or "recycle")
            continue
        slot.current = replacement
        reason = reason or "recycle"
        drained = runtime.roster.drain(worker)      # out of rotation now
        runtime.worker_recycled(worker, reason)    # counted as the replacement takes over
        # The old worker drains in the background (up to request_timeout): the replacement may
        # need replacing meanwhile (it can reach worker_max_requests while a long request holds
        # the old one), and its callers must not wait behind that drain.
        nursery.start_soon(_retire, runtime, worker, drained, reason)
        worker = replacement


async def _set_on(event: trio.Event, slot: Slot) -> None:
    await event.wait()
    slot.wake.set()


async def _retire(runtime: "PoolRuntime", worker: Worker, drained: trio.Event,
                  reason: str) -> None:
    with trio.move_on_after(runtime.config.request_timeout):
        await drained.wait()
    worker.stop(f"recycled ({reason})")
