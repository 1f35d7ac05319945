"""The subtree of one pool (docs/architecture.md has the whole tree):

    PoolSupervisor[name]        rest_for_one
    ├── Zygote                  only with preload=True: keeps the process workers are forked
    │                           from (its deaths stop there, like a worker's at its starter)
    ├── WorkerSupervisor        dynamic: one WorkerStarter per slot <name>-1 .. <name>-<size>
    ├── Pool                    the dispatcher; registered as ("pool", name)
    └── LifecycleManager        recycling by TTL / memory

Each run of the pool supervisor builds a fresh :class:`PoolRuntime`, through which its
children find each other. A crash of the dispatcher restarts it and the lifecycle manager; the
workers stay and join the new dispatcher. Worker crashes stop at their starter, zygote crashes
at the zygote child.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import trio

from snakepit import otp
from snakepit.config import PoolConfig
from snakepit.errors import SnakepitError
from snakepit.pool.dispatcher import Dispatcher
from snakepit.pool.lifecycle import lifecycle_manager
from snakepit.pool.pool import Pool
from snakepit.pool.runtime import PoolRuntime
from snakepit.pool.starter import Slot, backoff, worker_starter
from snakepit.pool.zygote import ZygoteKeeper

log = logging.getLogger("snakepit.pool")

STARTER_GRACE_MARGIN = 5.0   # beyond shutdown_grace: SIGKILL and reaping


def slot_ids(config: PoolConfig) -> list[str]:
    return [f"{config.name}-{i}" for i in range(1, config.size + 1)]


async def worker_supervisor(runtime: PoolRuntime, *,
                            task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                            ) -> None:
    """A dynamic supervisor with one starter per slot; starters report started at once, so
    every worker of every pool spawns concurrently (bounded by ``startup_batch_size``)."""
    cfg = runtime.config
    dyn = otp.DynamicSupervisor(max_children=cfg.size, name=f"pool:{cfg.name}:workers")
    try:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(dyn.run)
            for slot_id in slot_ids(cfg):
                await handle.start_child(otp.ChildSpec(
                    id=slot_id, start=functools.partial(worker_starter, runtime, slot_id),
                    restart="permanent", shutdown=cfg.shutdown_grace + STARTER_GRACE_MARGIN))
            task_status.started(handle)
    except BaseExceptionGroup as group:
        raise otp.unwrap_group(group) from None


async def zygote_child(runtime: PoolRuntime, *,
                       task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Keeps the pool's zygote running, as a worker starter keeps its slot: a zygote that died
    is restarted at once, one that keeps failing to start is retried with the slot backoff
    and reported ``degraded``. Like a starter it reports started at once and never fails
    because of its process, so zygote deaths never count against the supervisors (ADR 0002).
    Workers wait in :meth:`ZygoteKeeper.running` for a zygote to fork them from."""
    keeper = ZygoteKeeper(Slot(f"{runtime.name}-zygote"))
    runtime.zygote = keeper
    task_status.started(keeper)
    try:
        while True:
            if not await _zygote_incarnation(runtime, keeper):
                await trio.sleep(backoff(keeper.slot.failures))
    finally:
        runtime.zygote = None


async def _zygote_incarnation(runtime: PoolRuntime, keeper: ZygoteKeeper) -> bool:
    """One zygote from start to exit; False if it failed to start."""
    slot = keeper.slot
    try:
        async with trio.open_nursery() as nursery:
            try:
                zygote = await runtime.start_zygote(nursery)
            except SnakepitError as exc:
                slot.failures += 1
                slot.last_error = exc
                runtime.start_failed(slot, exc)   # a required pool's first start: raised
                nursery.cancel_scope.cancel()
                return False
            slot.failures, slot.last_error = 0, None
            nursery.start_soon(zygote.run)
            keeper.set(zygote)
            try:
                code = await zygote.process.wait()
                zygote.kill_forks()
                log.warning("pool %s: the zygote (pid %s) exited with code %s; restarting it "
                            "and its workers", runtime.name, zygote.process.pid, code)
            finally:
                keeper.set(None)
                with trio.CancelScope(shield=True):
                    await zygote.aclose(runtime.config.shutdown_grace)
                nursery.cancel_scope.cancel()
        return True
    except BaseExceptionGroup as group:
        raise otp.unwrap_group(group) from None


async def dispatcher_child(runtime: PoolRuntime, registry: otp.Registry, *,
                           task_status: trio.TaskStatus[Pool] = trio.TASK_STATUS_IGNORED
                           ) -> None:
    cfg = runtime.config
    # The workers' capacity lives in the roster, which outlives this child: a restarted
    # dispatcher takes over every ready worker's free slots as they are.
    dispatcher = Dispatcher(runtime.roster, max_queue_size=cfg.max_queue_size,
                            queue_timeout=cfg.queue_timeout, affinity=cfg.affinity)
    pool = Pool(runtime, dispatcher)
    runtime.dispatcher = dispatcher
    try:
        with registry.register(("pool", cfg.name), pool):
            task_status.started(pool)
            await trio.sleep_forever()
    finally:
        dispatcher.close()   # queued callers get ShuttingDown at once


async def pool_supervisor(config: PoolConfig, registry: otp.Registry,
                          make_runtime: Callable[[PoolConfig], PoolRuntime], *,
                          task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                          ) -> None:
    runtime = make_runtime(config)
    zygote = [otp.ChildSpec(id="zygote", start=functools.partial(zygote_child, runtime))] \
        if config.preload else []
    sup = otp.Supervisor([
        *zygote,
        otp.ChildSpec(id="workers", start=functools.partial(worker_supervisor, runtime),
                      type="supervisor", shutdown=otp.INFINITY),
        otp.ChildSpec(id="dispatcher",
                      start=functools.partial(dispatcher_child, runtime, registry)),
        otp.ChildSpec(id="lifecycle", start=functools.partial(lifecycle_manager, runtime)),
    ], strategy="rest_for_one", name=f"pool:{config.name}")
    with registry.register(("pool_runtime", config.name), runtime):
        await sup.run(task_status=task_status)


def pool_spec(config: PoolConfig, registry: otp.Registry,
              make_runtime: Callable[[PoolConfig], PoolRuntime]) -> otp.ChildSpec:
    return otp.ChildSpec(
        id=("pool", config.name),
        start=functools.partial(pool_supervisor, config, registry, make_runtime),
        type="supervisor", shutdown=otp.INFINITY)
