"""Worker: one OS process of a pool, its transport and its heartbeat monitor.

A ``Worker`` is one *incarnation* of a pool slot (``id`` = ``<pool>-<n>``, ``key`` =
``<id>#<incarnation>``). ``run`` follows the ``nursery.start`` protocol: it spawns the process,
waits for its readiness line, connects the transport and reports itself started; it then serves
until the process exits, the heartbeat monitor gives up on it, or it is stopped. Whatever the
path, the process group is stopped and reaped before ``run`` returns: SIGTERM → grace → SIGKILL
for an orderly stop or a recycle, SIGKILL at once for a worker that is unresponsive or
unreachable (``stop(kill=True)``). After ``started``, ``run`` never raises: the reason the
worker ended is recorded in ``exit_reason`` for the :mod:`~snakepit.pool.starter`.

Its state lives in the pool's :class:`~snakepit.pool.roster.Roster` (the one writer); the
worker tells the roster what happens to its process and reads its state from there.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from snakepit import otp
from snakepit.errors import SnakepitError, WorkerCrashed
from snakepit.pool.roster import ALIVE, Entry
from snakepit.transport.base import Transport
from snakepit_bridge import serialization

if TYPE_CHECKING:
    from snakepit.pool.runtime import PoolRuntime

log = logging.getLogger("snakepit.pool.worker")


CONFIRM_POLL_FIRST = 0.005   # seconds before the first "has the cancelled tool ended?" poll
CONFIRM_POLL_MAX = 0.25


class Worker:
    def __init__(self, runtime: "PoolRuntime", slot_id: str, incarnation: int) -> None:
        self.runtime = runtime
        self.id = slot_id
        self.incarnation = incarnation
        self.key = f"{slot_id}#{incarnation}"
        self.capacity = runtime.capacity
        self.entry: Entry = runtime.roster.starting(self)
        self.pid: int | None = None
        self.port: int | None = None
        self.started_at: float | None = None   # wall clock, for people
        self.started_mono: float | None = None  # trio clock, for TTLs
        self._transport: Transport | None = None
        self.process: Any = None
        self.exit_reason: str | None = None
        self.exited = trio.Event()
        self.missed_heartbeats = 0
        self.last_pong: float | None = None
        self.heartbeat_latency: float | None = None
        self._scope = trio.CancelScope()
        self._kill = False
        self._confirm = trio.Event()   # set when a request was abandoned on this worker
        self.abandoned_ids: set[str] = set()
        self.language = "worker"
        self.telemetry_stream: Any = None

    def __repr__(self) -> str:
        return f"<Worker {self.key} pid={self.pid} {self.state}>"

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise WorkerCrashed(f"worker {self.key} has no connection")
        return self._transport

    @property
    def state(self) -> str:
        return self.entry.state.value

    @property
    def in_flight(self) -> int:
        return self.entry.in_flight

    @property
    def requests(self) -> int:
        return self.entry.requests

    @property
    def alive(self) -> bool:
        return self.entry.state in ALIVE

    def stop(self, reason: str | None = None, *, kill: bool = False) -> None:
        """Stop the worker: gracefully (SIGTERM, ``shutdown_grace``, SIGKILL) or, with
        ``kill=True`` for an unresponsive or unreachable worker, with SIGKILL at once. It leaves
        rotation now; wait on ``exited`` for the end."""
        if reason is not None and self.exit_reason is None:
            self.exit_reason = reason
        self._kill = self._kill or kill
        self.runtime.roster.leaving(self)
        self._scope.cancel()

    def abandoned(self, request_id: str) -> None:
        """The caller of ``request_id`` gave up while its tool may still run: the worker stays
        out of rotation until it reports the tool ended, or is killed after ``cancel_grace``."""
        self.abandoned_ids.add(request_id)
        self.runtime.roster.abandon(self)
        self._confirm.set()

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
                        self._transport = rt.connect(self)
                        await self._transport.start(nursery)
                        self.started_at = time.time()
                        self.started_mono = trio.current_time()
                        rt.roster.ready(self)
                        task_status.started(self)
                        await self._serve()
                    if self._scope.cancelled_caught and self.exit_reason is None:
                        self.exit_reason = "stopped"
                except Exception as exc:
                    if self.started_at is None:   # it never started: the starter's error
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
            nursery.start_soon(self._heartbeats)
            nursery.start_soon(self._confirmations)
            nursery.start_soon(self._forward_telemetry)
            code = await self.process.wait()
            self.exit_reason = self.exit_reason or f"process exited with code {code}"
            nursery.cancel_scope.cancel()

    async def _heartbeats(self) -> None:
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
                    reason = f"missed {self.missed_heartbeats} heartbeats"
                    log.warning("worker %s: %s; killing and restarting it", self.key, reason)
                    self.stop(reason, kill=True)
                    return
                log.warning("worker %s missed %d heartbeats (not dependent: kept)",
                            self.key, self.missed_heartbeats)

    async def _confirmations(self) -> None:
        """While requests abandoned on this worker may still run, ask the worker (its
        heartbeat lists the request ids it still runs) until they are gone; a worker that does
        not confirm within ``cancel_grace`` is killed."""
        grace = self.runtime.config.cancel_grace
        while True:
            await self._confirm.wait()
            self._confirm = trio.Event()
            delay = CONFIRM_POLL_FIRST
            with trio.move_on_after(grace) as scope:
                while self.abandoned_ids:
                    # Only ids abandoned before the poll was sent can be confirmed by its
                    # answer (a later one's request may not have reached the worker yet).
                    asked = set(self.abandoned_ids)
                    try:
                        reply = await self.transport.heartbeat(0)
                    except SnakepitError as exc:
                        self.stop(f"unreachable while confirming a cancellation: {exc}",
                                  kill=True)
                        return
                    ended = asked.difference(reply.running)
                    if ended:
                        self.abandoned_ids -= ended
                        self.runtime.roster.confirmed(self, len(ended))
                    if not self.abandoned_ids:
                        break
                    await trio.sleep(delay)
                    delay = min(delay * 2, CONFIRM_POLL_MAX)
            if scope.cancelled_caught:
                self.stop(f"a cancelled tool did not end within cancel_grace={grace} s",
                          kill=True)
                return

    async def _forward_telemetry(self) -> None:
        """Re-emit the worker's own events as ("snakepit", <language>, *name) on the host."""
        rt = self.runtime
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
        rt.roster.leaving(self)
        rt.worker_gone(self)
        # The process first (SIGTERM and its grace for in-flight work, or SIGKILL at once),
        # then the transport: closing a pipe transport first would tell the worker its host is
        # gone.
        if self.process is not None:
            await self.process.terminate(0.0 if self._kill else rt.config.shutdown_grace)
        if self._transport is not None:
            try:
                await self._transport.aclose()
            except Exception as exc:
                log.debug("closing transport of %s: %r", self.key, exc)
        rt.roster.stopped(self)

    def info(self) -> dict[str, Any]:
        rss = None
        node_id = getattr(self.process, "node_id", None)   # Ray's node id; None: this host
        if self.pid is not None and self.alive and node_id is None:
            rss = self.runtime.rss(self.pid)
        return {
            "id": self.id, "key": self.key, "incarnation": self.incarnation, "pid": self.pid,
            "state": self.state, "capacity": self.capacity, "in_flight": self.in_flight,
            "requests": self.requests, "started_at": self.started_at, "rss": rss,
            "missed_heartbeats": self.missed_heartbeats, "node_id": node_id,
        }
