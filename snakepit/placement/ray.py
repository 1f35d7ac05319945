"""A pool's workers as Ray actors: the application's Ray link, spawning and reaching workers.

    link = await nursery.start(run_ray_link, RayPlacement(address=None))   # ray.init if needed
    spawner = RaySpawner(link, launch, config)       # PoolRuntime(spawn=spawner.spawn,
                                                     #             connect=spawner.connect)

Each worker slot is a :class:`snakepit_bridge.ray_actor.WorkerActor` placed by Ray (one CPU plus
``RayPlacement.resources``, ``SPREAD`` or ``PACK``); the actor starts the usual gRPC worker on
its node and reports its address, pid and node id. The pool then treats it like a local worker
through :class:`RayWorkerProcess` (``wait_ready`` / ``wait`` / ``terminate``, the same calls a
:class:`~snakepit.pool.process.WorkerProcess` answers). Every connection is mutual TLS with the
run's CA (:mod:`snakepit.placement.tls`) plus the per-run secret (ADR 0006).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from typing import TYPE_CHECKING, Any

import trio

from snakepit.errors import ConfigError, WorkerStartError
from snakepit.placement.spec import RayPlacement
from snakepit.placement.tls import RunCA
from snakepit.pool.process import Ready
from snakepit_bridge.tls import host_port

if TYPE_CHECKING:
    from snakepit.config import PoolConfig
    from snakepit.pool.launch import LaunchContext
    from snakepit.pool.worker import Worker

log = logging.getLogger("snakepit.placement.ray")

#: Seconds an actor gets to answer ``stop`` beyond the worker's own grace.
STOP_SLACK = 10.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("a RayPlacement needs Ray: pip install 'snakepit[ray]' "
                          f"({exc})") from None
    return ray


class RayLink:
    """The application's use of Ray: the connection, the run's CA, the node address.

    ``owned``: this application called ``ray.init`` (and will call ``ray.shutdown``); when Ray
    was already initialised in the process, the connection is used and left open.
    ``node_address`` is the address Ray reports for the host's node: the host's service for
    remote workers binds it (never 0.0.0.0)."""

    def __init__(self, ray: Any, owned: bool, node_address: str, ca: RunCA) -> None:
        self.ray, self.owned, self.node_address, self.ca = ray, owned, node_address, ca
        # ray.get in threads: one per live worker waits for its process to end
        self.threads = trio.CapacityLimiter(math.inf)


async def run_ray_link(placement: RayPlacement, *,
                       task_status: trio.TaskStatus[RayLink] = trio.TASK_STATUS_IGNORED
                       ) -> None:
    """Connect to Ray (unless already connected) for as long as this runs."""
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        # In a thread, so the trio loop runs on and Ray installs no SIGTERM handler of its own
        # (the application's signal handling stays); Ray warns about the latter: by design.
        quiet = _DropMessage("SIGTERM handler is not set")
        logging.getLogger("ray._private.worker").addFilter(quiet)
        try:
            await trio.to_thread.run_sync(functools.partial(
                ray.init, address=placement.address, logging_level=logging.WARNING,
                configure_logging=False))
        finally:
            logging.getLogger("ray._private.worker").removeFilter(quiet)
    try:
        address = ray.util.get_node_ip_address()
        if address in ("", "0.0.0.0", "::"):
            raise ConfigError(f"Ray reports no usable address for the host's node: "
                              f"{address!r}")
        ca = await trio.to_thread.run_sync(RunCA.create)
        task_status.started(RayLink(ray, owned, address, ca))
        await trio.sleep_forever()
    finally:
        if owned:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(ray.shutdown)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class RayWorkerProcess:
    """One worker's actor, seen by the pool as its worker process."""

    def __init__(self, link: RayLink, actor: Any, start_ref: Any, worker_id: str) -> None:
        self._link, self._actor, self._start, self.worker_id = link, actor, start_ref, worker_id
        self.pid: int | None = None
        self.node_id: str | None = None
        self.address: str | None = None
        self.pipe_socket: Any = None
        self.returncode: int | None = None
        self._stopped = False

    async def _get(self, ref: Any, timeout: float | None = None) -> Any:
        ray = self._link.ray
        return await trio.to_thread.run_sync(functools.partial(ray.get, ref, timeout=timeout),
                                             abandon_on_cancel=True,
                                             limiter=self._link.threads)

    async def wait_ready(self, timeout: float) -> Ready:
        """Placement, the worker's start and its readiness, within ``timeout`` seconds."""
        ray = self._link.ray
        try:
            ready = await self._get(self._start, timeout)
        except ray.exceptions.GetTimeoutError:
            raise WorkerStartError(
                f"worker {self.worker_id} did not report ready within startup_timeout="
                f"{timeout} s (no Ray node with room for it, or a slow start)",
                details={"worker_id": self.worker_id}) from None
        except ray.exceptions.RayError as exc:
            # a RayTaskError carries the actor's own exception: that message, not Ray's trace
            cause = getattr(exc, "cause", None) or exc
            raise WorkerStartError(f"worker {self.worker_id} failed to start on Ray: {cause}",
                                   details={"worker_id": self.worker_id}) from None
        self.pid, self.node_id, self.address = ready["pid"], ready["node_id"], ready["address"]
        return Ready(port=ready["port"], pid=ready["pid"], info=ready["info"])

    async def wait(self) -> int:
        """Until the worker process exits, or its actor is lost (its node went away)."""
        ray = self._link.ray
        try:
            code = int(await self._get(self._actor.wait.remote()))
        except ray.exceptions.RayError as exc:
            log.warning("worker %s: its Ray actor is gone (%s)", self.worker_id,
                        type(exc).__name__)
            code = -1
        self.returncode = code
        return code

    async def terminate(self, grace: float) -> int:
        """Stop the worker process (SIGTERM, ``grace``, SIGKILL, by its actor), then the
        actor. Safe to call more than once, and on an actor that is already gone."""
        ray = self._link.ray
        if not self._stopped:
            self._stopped = True
            try:
                code = await self._get(self._actor.stop.remote(grace), grace + STOP_SLACK)
                if code is not None:
                    self.returncode = code
            except Exception as exc:
                log.debug("stopping worker %s via its actor: %r", self.worker_id, exc)
            # The actor's end closes the worker's stdin: whatever survived exits too.
            await trio.to_thread.run_sync(functools.partial(ray.kill, self._actor,
                                                            no_restart=True))
        return self.returncode if self.returncode is not None else -1


class RaySpawner:
    """``spawn`` and ``connect`` of a pool with a RayPlacement."""

    def __init__(self, link: RayLink, launch: "LaunchContext", config: "PoolConfig") -> None:
        assert config.placement is not None
        self.link, self.launch, self.config = link, launch, config
        from snakepit_bridge.ray_actor import WorkerActor
        self._actor_class = link.ray.remote(WorkerActor).options(
            **config.placement.actor_options())

    async def spawn(self, worker: "Worker", nursery: trio.Nursery) -> RayWorkerProcess:
        from snakepit.pool.launch import _options, worker_env
        config, adapter = self.config, worker.runtime.adapter
        launch = self.launch   # its host_address is the host's TLS listener for remote workers
        opts = _options(launch, config, worker.id, worker.capacity, -1, None)
        args = adapter.command(opts)[1:]
        # The node's own environment stays; only what snakepit sets travels.
        env = {k: v for k, v in worker_env(config, adapter, opts, launch.secret).items()
               if os.environ.get(k) != v}
        env.update(adapter.env(opts))
        env.update(config.env)
        env.update(self.link.ca.worker.env())
        actor = await trio.to_thread.run_sync(self._actor_class.remote)
        start = actor.start.remote(args, env, config.python, config.startup_timeout)
        return RayWorkerProcess(self.link, actor, start, worker.id)

    def connect(self, worker: "Worker") -> Any:
        from snakepit.transport.grpc import GrpcTransport
        from snakepit_bridge.protocol import TLS_WORKER_NAME
        process: RayWorkerProcess = worker.process
        assert process.address is not None and worker.port is not None
        return GrpcTransport(host_port(process.address, worker.port), self.launch.secret,
                             tls=(self.link.ca.host, TLS_WORKER_NAME))
