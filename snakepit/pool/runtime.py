"""PoolRuntime: what the parts of one pool share while the pool's supervisor runs.

The pool's supervisor (``rest_for_one``: workers, dispatcher, lifecycle manager) creates one
``PoolRuntime`` per run; its children find each other through it: the
:class:`~snakepit.pool.roster.Roster` (every worker's state and capacity, written only there),
the slots the lifecycle manager walks, the counters the facade reads.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, Callable

import psutil
import trio

from snakepit import telemetry
from snakepit.config import PoolConfig
from snakepit.errors import SnakepitError
from snakepit.pool.dispatcher import Dispatcher
from snakepit.pool.roster import Member, Roster
from snakepit.pool.starter import Slot
from snakepit.pool.worker import Worker

if TYPE_CHECKING:
    from snakepit.pool.zygote import ZygoteKeeper

log = logging.getLogger("snakepit.pool")

Emit = Callable[[tuple[str, ...], dict[str, Any], dict[str, Any]], None]


def any_listening(events: tuple[tuple[str, ...], ...]) -> bool:
    """Whether a handler listens to any of ``events`` (full names)."""
    listening = telemetry.hub.listening
    for event in events:
        if listening(event):
            return True
    return False


class PoolRuntime:
    def __init__(self, config: PoolConfig, *, spawn: Callable[[Worker, trio.Nursery], Any],
                 connect: Callable[[Worker], Any], emit: Emit | None = None,
                 start_zygote: Callable[["PoolRuntime", trio.Nursery], Any] | None = None
                 ) -> None:
        self.config = config
        self.name = config.name
        self.adapter = config.resolved_adapter()
        self.capacity = config.capacity_for(self.adapter)
        self._spawn = spawn
        self._connect = connect
        self._emit = emit
        self._start_zygote = start_zygote
        self.zygote: "ZygoteKeeper | None" = None   # preload=True: what workers are forked from
        self.startup_limiter = trio.CapacityLimiter(config.startup_batch_size)
        self.roster = Roster(config.name, max_requests=config.worker_max_requests,
                             pipeline=config.pipeline)
        self.roster.limit_reached = self._limit_reached
        self.dispatcher: Dispatcher | None = None   # the current one (it may be restarted)
        self.slots: dict[str, Slot] = {}
        self.workers: dict[str, Worker] = {}   # live workers by key
        self.ready = trio.Event()               # every slot has had a worker ready once
        self.initial_failure: SnakepitError | None = None
        self.failed = trio.Event()               # a first start failed (see initial_failure)
        self._ever_ready: set[str] = set()
        self.requests = 0
        self.errors = 0
        self.restarts = 0
        self.recycled = 0
        self.recycle_reasons: dict[str, int] = {}
        self.run_token = secrets.token_hex(4)
        self.worker_telemetry: dict[str, Any] = {"enabled": True, "sampling_rate": 1.0,
                                                 "allow": (), "deny": ()}

    # -- spawning ---------------------------------------------------------------------------
    async def spawn(self, worker: Worker, nursery: trio.Nursery) -> Any:
        return await self._spawn(worker, nursery)

    def connect(self, worker: Worker) -> Any:
        return self._connect(worker)

    async def start_zygote(self, nursery: trio.Nursery) -> Any:
        if self._start_zygote is None:
            raise SnakepitError(f"pool {self.name!r}: no way to start a zygote here")
        return await self._start_zygote(self, nursery)

    # -- slots and workers ------------------------------------------------------------------
    def add_slot(self, slot_id: str) -> Slot:
        slot = self.slots[slot_id] = Slot(slot_id)
        return slot

    def remove_slot(self, slot: Slot) -> None:
        self.slots.pop(slot.id, None)

    def worker_ready(self, worker: Worker) -> None:
        self.workers[worker.key] = worker
        self.emit(("pool", "worker", "spawned"), {"startup_time": 0.0},
                  {"worker_id": worker.id, "worker_key": worker.key, "pid": worker.pid})
        self._ever_ready.add(worker.id)
        if len(self._ever_ready) >= self.config.size:
            self.ready.set()

    def worker_gone(self, worker: Worker) -> None:
        if self.workers.pop(worker.key, None) is None:
            return
        self.emit(("pool", "worker", "terminated"), {},
                  {"worker_id": worker.id, "worker_key": worker.key, "pid": worker.pid,
                   "reason": worker.exit_reason})

    def _limit_reached(self, member: Member) -> None:
        """``worker_max_requests`` handed out: the slot's starter replaces the worker now."""
        slot = self.slots.get(member.id)
        # A worker still being started counts too: queued callers take its slots as it joins,
        # before its starter makes it current, and it may reach the limit right there.
        if slot is not None and (slot.current is member or slot.newest is member):
            slot.request_recycle("max_requests")

    def worker_restarting(self, worker: Worker) -> None:
        self.restarts += 1
        self.emit(("pool", "worker", "restarted"), {},
                  {"worker_id": worker.id, "reason": worker.exit_reason})

    def worker_recycled(self, worker: Worker, reason: str) -> None:
        self.recycled += 1
        self.recycle_reasons[reason] = self.recycle_reasons.get(reason, 0) + 1
        self.emit(("pool", "worker", "recycled"), {},
                  {"worker_id": worker.id, "worker_key": worker.key, "reason": reason})

    def start_failed(self, slot: Slot, error: SnakepitError) -> None:
        first_start = slot.id not in self._ever_ready
        # A required pool's first start failure is raised to the caller with the worker's
        # stderr: the log gets its first line only, so the traceback is told once.
        told = str(error).split("\n", 1)[0] if first_start and self.config.required else error
        log.warning("pool %s: worker %s failed to start (%d in a row): %s", self.name, slot.id,
                    slot.failures, told)
        if first_start and self.initial_failure is None:
            self.initial_failure = error
            self.failed.set()

    # -- observability ----------------------------------------------------------------------
    def telemetry_control(self) -> Any:
        from snakepit_bridge.proto import bridge_pb2 as pb
        c = self.worker_telemetry
        return pb.TelemetryControl(enabled=c["enabled"], sampling_rate=c["sampling_rate"],
                                   allow=list(c["allow"]), deny=list(c["deny"]))

    def set_worker_telemetry(self, *, enabled: bool = True, sampling_rate: float = 1.0,
                             allow: Any = (), deny: Any = ()) -> None:
        """Change every worker's telemetry filters now, without restarting them."""
        if not 0.0 <= sampling_rate <= 1.0:
            raise ValueError(f"sampling_rate must be within 0..1, got {sampling_rate!r}")
        self.worker_telemetry = {"enabled": bool(enabled), "sampling_rate": float(sampling_rate),
                                 "allow": tuple(allow), "deny": tuple(deny)}
        control = self.telemetry_control()
        for worker in self.workers.values():
            if worker.telemetry_stream is not None:
                worker.telemetry_stream.send(control)


    def listening(self, *events: tuple[str, ...]) -> bool:
        """Whether anyone listens to ("snakepit", *event) for any of ``events`` — skip
        building them if not."""
        return any_listening(tuple(("snakepit",) + event for event in events))

    def emit(self, event: tuple[str, ...], measurements: dict[str, Any],
             metadata: dict[str, Any]) -> None:
        if self._emit is not None:
            self._emit(("snakepit",) + event, measurements, {"pool": self.name, **metadata})

    def emit_heartbeat(self, worker: Worker, what: str, **measurements: Any) -> None:
        self.emit(("heartbeat", what), measurements, {"worker_id": worker.id})

    @staticmethod
    def rss(pid: int) -> int | None:
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except psutil.Error:
            return None

    def stats(self) -> dict[str, Any]:
        d = self.dispatcher
        return {
            "workers": len(self.workers),
            "available": self.roster.available,
            "busy": self.roster.busy,
            "requests": self.requests,
            "queued": d.queued if d else 0,
            "errors": self.errors,
            "queue_timeouts": d.queue_timeouts if d else 0,
            "pool_saturated": d.pool_saturated if d else 0,
            "restarts": self.restarts,
            "recycled": self.recycled,
            "degraded": sum(1 for s in self.slots.values() if s.degraded)
            + int(bool(self.zygote is not None and self.zygote.degraded)),
        }
