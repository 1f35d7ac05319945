"""Worker: one OS process of a pool, its transport and its heartbeat monitor.

A ``Worker`` is one *incarnation* of a pool slot (``id`` = ``<pool>-<n>``, ``key`` =
``<id>#<incarnation>``). ``run`` follows the ``nursery.start`` protocol: it spawns the process,
waits for its readiness line, connects the transport and reports itself started; it then serves
until the process exits, the heartbeat monitor gives up on it, or it is stopped. Whatever the
path, the process group is terminated (SIGTERM → grace → SIGKILL) and reaped before ``run``
returns. After ``started``, ``run`` never raises: the reason the worker ended is recorded in
``exit_reason`` for the :mod:`~snakepit.pool.starter` that restarts it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from snakepit import otp
from snakepit.errors import WorkerCrashed
from snakepit_bridge import serialization

if TYPE_CHECKING:
    from snakepit.pool.runtime import PoolRuntime

log = logging.getLogger("snakepit.pool.worker")


class Worker:
    def __init__(self, runtime: "PoolRuntime", slot_id: str, incarnation: int) -> None:
        self.runtime = runtime
        self.id = slot_id
        self.incarnation = incarnation
        self.key = f"{slot_id}#{incarnation}"
        self.capacity = runtime.capacity
        self.in_flight = 0
        self.requests = 0
        self.state = "starting"
        self.pid: int | None = None
        self.port: int | None = None
        self.started_at: float | None = None   # wall clock, for people
        self.started_mono: float | None = None  # trio clock, for TTLs
        self.transport: Any = None
        self.process: Any = None
        self.exit_reason: str | None = None
        self.exited = trio.Event()
        self.missed_heartbeats = 0
        self.last_pong: float | None = None
        self.heartbeat_latency: float | None = None
        self._scope = trio.CancelScope()
        self.language = "worker"
        self.telemetry_stream: Any = None

    def __repr__(self) -> str:
        return f"<Worker {self.key} pid={self.pid} {self.state}>"

    @property
    def alive(self) -> bool:
        return self.state in ("ready", "draining")

    def stop(self) -> None:
        """Ask the worker to stop (gracefully); wait on ``exited`` for the end."""
        self._scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus["Worker"] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        rt = self.runtime
        try:
            async with trio.open_nursery() as nursery:   # the process's output pumps
                try:
                    with self._scope:
                        async with rt.startup_limiter:
                            self.process = await rt.spawn(self, nursery)
                            ready = await self.process.wait_ready(rt.config.startup_timeout)
                            if rt.config.startup_batch_delay:
                                await trio.sleep(rt.config.startup_batch_delay)
                        self.pid, self.port = ready.pid, ready.port
                        self.language = str(ready.info.get("language") or "worker")
                        self.transport = rt.connect(self)
                        if hasattr(self.transport, "start"):
                            await self.transport.start(nursery)
                        self.state = "ready"
                        self.started_at = time.time()
                        self.started_mono = trio.current_time()
                        task_status.started(self)
                        await self._serve()
                    if self._scope.cancelled_caught and self.exit_reason is None:
                        self.exit_reason = "stopped"
                except Exception as exc:
                    if self.state == "starting":
                        raise
                    self.exit_reason = f"{type(exc).__name__}: {exc}"
                    log.warning("worker %s failed: %s", self.key, self.exit_reason)
                finally:
                    with trio.CancelScope(shield=True):
                        await self._cleanup()
                    nursery.cancel_scope.cancel()   # pumps a stray grandchild keeps open
        except BaseExceptionGroup as group:
            raise otp.unwrap_group(group) from None
        finally:
            self.exited.set()

    async def _serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeats, nursery.cancel_scope)
            nursery.start_soon(self._forward_telemetry)
            code = await self.process.wait()
            self.exit_reason = self.exit_reason or f"process exited with code {code}"
            nursery.cancel_scope.cancel()

    async def _heartbeats(self, cancel_scope: trio.CancelScope) -> None:
        hb = self.runtime.config.heartbeat
        if not hb.interval:
            return
        seq = 0
        while True:
            await trio.sleep(hb.interval)
            seq += 1
            sent = trio.current_time()
            self.runtime.emit_heartbeat(self, "ping", seq=seq)
            ok = False
            with trio.move_on_after(hb.timeout):
                try:
                    await self.transport.heartbeat(seq)
                    ok = True
                except WorkerCrashed:
                    pass
                except Exception as exc:  # any failed pong is a missed heartbeat
                    log.debug("heartbeat %s to %s failed: %r", seq, self.key, exc)
            if ok:
                self.missed_heartbeats = 0
                self.last_pong = trio.current_time()
                self.heartbeat_latency = self.last_pong - sent
                self.runtime.emit_heartbeat(self, "pong", latency=self.heartbeat_latency)
                continue
            self.missed_heartbeats += 1
            self.runtime.emit_heartbeat(self, "missed", missed=self.missed_heartbeats)
            if self.missed_heartbeats >= hb.max_missed:
                self.runtime.emit_heartbeat(self, "failed", missed=self.missed_heartbeats)
                if hb.dependent:
                    self.exit_reason = f"missed {self.missed_heartbeats} heartbeats"
                    log.warning("worker %s: %s; restarting it", self.key, self.exit_reason)
                    cancel_scope.cancel()
                    return
                log.warning("worker %s missed %d heartbeats (not dependent: kept)",
                            self.key, self.missed_heartbeats)

    async def _forward_telemetry(self) -> None:
        """Re-emit the worker's own events as ("snakepit", <language>, *name) on the host."""
        rt = self.runtime
        if not hasattr(self.transport, "telemetry"):
            return
        try:
            async with self.transport.telemetry(rt.telemetry_control()) as stream:
                self.telemetry_stream = stream
                async for ev in stream.events:
                    if list(ev.event) == ["telemetry", "configured"]:
                        continue
                    meta = serialization.loads(ev.metadata_json) or {}
                    rt.emit((self.language, *ev.event),
                            serialization.loads(ev.measurements_json) or {},
                            {**meta, "worker_id": self.id, "correlation_id": ev.correlation_id,
                             "dropped": ev.dropped, "worker_time": ev.timestamp})
        except Exception as exc:  # telemetry loss never takes a worker down
            log.debug("telemetry stream of %s ended: %r", self.key, exc)
        finally:
            self.telemetry_stream = None

    async def _cleanup(self) -> None:
        rt = self.runtime
        self.state = "stopping" if self.state != "starting" else "failed"
        rt.worker_gone(self)
        # The process first (SIGTERM, its grace for in-flight work), then the transport:
        # closing a pipe transport first would tell the worker its host is gone.
        if self.process is not None:
            await self.process.terminate(rt.config.shutdown_grace)
        if self.transport is not None:
            try:
                await self.transport.aclose()
            except Exception as exc:
                log.debug("closing transport of %s: %r", self.key, exc)
        if self.state == "stopping":
            self.state = "stopped"

    def info(self) -> dict[str, Any]:
        rss = None
        if self.pid is not None and self.alive:
            rss = self.runtime.rss(self.pid)
        return {
            "id": self.id, "key": self.key, "incarnation": self.incarnation, "pid": self.pid,
            "state": self.state, "capacity": self.capacity, "in_flight": self.in_flight,
            "requests": self.requests, "started_at": self.started_at, "rss": rss,
            "missed_heartbeats": self.missed_heartbeats,
        }
