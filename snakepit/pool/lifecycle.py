"""LifecycleManager: recycles workers by age, request count or memory.

Every ``interval`` seconds it looks at each slot's current worker and asks the slot's starter
to recycle it when ``worker_ttl`` (seconds since ready) or ``worker_max_memory_mb`` (the worker
process's RSS, via psutil) is exceeded. (``worker_max_requests`` is enforced by the roster as
requests are handed out.) The
starter starts the replacement first and drains the old worker, so recycling fails no request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from snakepit.pool.runtime import PoolRuntime
    from snakepit.pool.worker import Worker

MAX_INTERVAL = 1.0
STATUS_INTERVAL = 5.0   # seconds between ("snakepit", "pool", "status") events


def recycle_reason(runtime: "PoolRuntime", worker: "Worker", now: float) -> str | None:
    cfg = runtime.config
    if cfg.worker_ttl is not None and worker.started_mono is not None \
            and now - worker.started_mono >= cfg.worker_ttl:
        return "ttl"
    if cfg.worker_max_memory_mb is not None and worker.pid is not None:
        rss = runtime.rss(worker.pid)
        if rss is not None and rss > cfg.worker_max_memory_mb * 1024 * 1024:
            return "max_memory"
    return None


def check_interval(runtime: "PoolRuntime") -> float | None:
    cfg = runtime.config
    if cfg.worker_ttl is None and cfg.worker_max_memory_mb is None:
        return None   # request counts: the roster, as requests are handed out
    interval = MAX_INTERVAL
    if cfg.worker_ttl is not None:
        interval = min(interval, max(0.05, cfg.worker_ttl / 4))
    return interval


async def lifecycle_manager(runtime: "PoolRuntime", *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
    interval = check_interval(runtime)
    tick = min(interval, STATUS_INTERVAL) if interval is not None else STATUS_INTERVAL
    next_status = trio.current_time() + STATUS_INTERVAL
    task_status.started()
    while True:
        await trio.sleep(tick)
        now = trio.current_time()
        if now >= next_status:
            next_status = now + STATUS_INTERVAL
            runtime.emit(("pool", "status"), runtime.stats(), {})
        if interval is None:
            continue
        for slot in list(runtime.slots.values()):
            worker = slot.current
            if worker is None or worker.state != "ready" or slot.recycle_reason:
                continue
            reason = recycle_reason(runtime, worker, now)
            if reason is not None:
                slot.request_recycle(reason)
