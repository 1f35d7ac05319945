"""snakepit.Application: the host's supervision tree (docs/architecture.md; OTP rules: ADR 0001).

    Application                     rest_for_one
    ├── process_registry            every OS pid we spawn; orphan sweep at start
    ├── ray                         only with a RayPlacement: the Ray connection, the run's CA
    ├── sessions                    the SessionStore and its TTL sweeper
    ├── host_bridge                 the server workers call back into
    ├── pools                       one_for_one, one PoolSupervisor per configured pool
    ├── admin                       this run's admin socket (snakepit inspect)
    └── metrics                     Prometheus, with Config.metrics_address

``Application(config).run`` follows the ``nursery.start`` protocol and reports an
:class:`~snakepit.api.App` once every required pool is ready; ``snakepit.start(config)`` wraps it
in an ``async with``. Every run gets a fresh per-run secret (workers receive it in their
environment) and a run id for the process registry.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

import attrs
import trio

from snakepit import otp
from snakepit.config import Config, PoolConfig
from snakepit.errors import ConfigError, SnakepitError
from snakepit.pool.runtime import PoolRuntime
from snakepit.pool.supervisor import pool_spec
from snakepit.pool.worker import Worker

if TYPE_CHECKING:
    from snakepit.hostbridge.handler import HostServices
    from snakepit.placement.ray import RayLink
    from snakepit.pool.process_registry import ProcessRegistry
    from snakepit.sessions import SessionStore

log = logging.getLogger("snakepit")


@attrs.frozen
class BridgeHandle:
    """What the HostBridge child publishes: where workers call the host, and what answers."""

    address: str
    services: "HostServices"
    remote_address: str = ""   # the TLS listener remote (Ray) workers call, when there is one


# The names under which the application's children publish themselves in ``host.registry``
# for their lifetime (siblings look them up; nobody fills in fields of a shared object).
PROCESS_REGISTRY = "process_registry"
SESSIONS = "sessions"
HOST_BRIDGE = "host_bridge"
RAY = "ray"


class HostContext:
    """Per-run facts (config, secret, run id, the registry children publish themselves in)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.secret = secrets.token_urlsafe(32)
        self.run_id = secrets.token_hex(8)
        self.state_dir = config.resolved_state_dir()
        self.registry = otp.Registry()
        from snakepit_bridge.shm import run_prefix
        self.shm_prefix = run_prefix(self.run_id)   # names of this run's blob segments
        from snakepit import telemetry
        self.telemetry = telemetry.hub
        from snakepit.tools import HostTools
        self.tools = HostTools()

    @property
    def sessions(self) -> "SessionStore | None":
        store: SessionStore | None = self.registry.whereis(SESSIONS)
        return store

    @property
    def process_registry(self) -> "ProcessRegistry | None":
        registry: ProcessRegistry | None = self.registry.whereis(PROCESS_REGISTRY)
        return registry

    @property
    def ray(self) -> "RayLink | None":
        link: RayLink | None = self.registry.whereis(RAY)
        return link

    @property
    def bridge(self) -> BridgeHandle | None:
        handle: BridgeHandle | None = self.registry.whereis(HOST_BRIDGE)
        return handle

    def emit(self, event: tuple[str, ...], measurements: dict[str, Any],
             metadata: dict[str, Any]) -> None:
        if self.telemetry is not None:
            self.telemetry.execute(event, measurements, metadata)

    def make_runtime(self, config: PoolConfig) -> PoolRuntime:
        """A pool's runtime; called as the pool starts, after the host's services."""
        from snakepit.pool.launch import LaunchContext, spawn_worker, start_zygote
        bridge = self.bridge
        launch = LaunchContext(secret=self.secret,
                               host_address=bridge.address if bridge else "",
                               shm_prefix=self.shm_prefix, log_level=self.config.log_level,
                               process_registry=self.process_registry)
        if config.placement is not None:
            from snakepit.placement.ray import RaySpawner
            assert self.ray is not None, "the ray child starts before the pools"
            remote = attrs.evolve(launch, host_address=bridge.remote_address if bridge else "")
            spawner = RaySpawner(self.ray, remote, config)
            return PoolRuntime(config, spawn=spawner.spawn, connect=spawner.connect,
                               emit=self.emit)
        return PoolRuntime(config, spawn=functools.partial(spawn_worker, launch, config),
                           connect=self.connect, emit=self.emit,
                           start_zygote=functools.partial(start_zygote, launch))

    def connect(self, worker: Worker) -> Any:
        if worker.runtime.config.resolved_transport == "pipe":
            from snakepit.transport.pipe import PipeTransport
            sock, worker.process.pipe_socket = worker.process.pipe_socket, None
            bridge = self.bridge
            return PipeTransport(sock, worker.key, bridge.services if bridge else None,
                                 shm_prefix=self.shm_prefix, worker_pid=worker.pid)
        from snakepit.transport.grpc import GrpcTransport
        return GrpcTransport(f"127.0.0.1:{worker.port}", self.secret)


class Application:
    def __init__(self, config: Config) -> None:
        if not isinstance(config, Config):
            raise ConfigError(f"Application needs a snakepit.Config, got {config!r}")
        self.config = config

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        # We fork+exec workers; grpc's fork handlers have deadlocked such code. grpc's core
        # reads this at grpc_init (first channel or server) and its Python layer defaults to off
        # when unset, so the app's start is early enough and `import snakepit` stays free of
        # side effects (ADR 0004). Only if the user has not chosen otherwise; workers get it in
        # their own spawn environment (pool/launch.py).
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
        from snakepit.api import App

        level = self.config.log_level
        root = logging.getLogger("snakepit")
        root.setLevel(logging.CRITICAL + 1 if level == "none" else level.upper())
        from snakepit.logs import install
        for name in ("snakepit", "snakepit.worker", "snakepit.pool", "snakepit.otp"):
            install(logging.getLogger(name))
        host = HostContext(self.config)
        for pool in self.config.pools:   # one-time runtime set-up (e.g. Node dependencies)
            await pool.resolved_adapter().prepare(str(host.state_dir))
        pools = otp.Supervisor(
            [pool_spec(p, host.registry, host.make_runtime) for p in self.config.pools],
            strategy="one_for_one", name="pools")
        tree = otp.Supervisor([
            otp.ChildSpec(id="process_registry",
                          start=functools.partial(_process_registry, host)),
            *([otp.ChildSpec(id="ray", start=functools.partial(_ray, host, placement))]
              if (placement := self.config.remote_placement()) is not None else []),
            otp.ChildSpec(id="sessions", start=functools.partial(_sessions, host)),
            otp.ChildSpec(id="host_bridge", start=functools.partial(_host_bridge, host)),
            pools.child_spec("pools"),
            otp.ChildSpec(id="admin", start=functools.partial(_admin, host)),
            *([otp.ChildSpec(id="metrics", start=functools.partial(
                _metrics, host, self.config.metrics_address))]
              if self.config.metrics_address else []),
        ], strategy="rest_for_one", name="application")
        otp.current_observer.set(functools.partial(_supervision_event, host))
        from snakepit.telemetry.metrics import install_otel, uninstall_otel
        otel_handler = install_otel(host)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(tree.run)
                app = App(self.config, host)
                await _wait_ready(self.config, host)
                task_status.started(app)
                try:
                    await trio.sleep_forever()
                finally:
                    app.closed = True
        except BaseException as exc:
            error = startup_error(otp.unwrap_group(exc))
            if error is exc:
                raise
            raise error from error.__cause__
        finally:
            uninstall_otel(host, otel_handler)


def startup_error(exc: BaseException) -> BaseException:
    """What ``snakepit.start`` raises for ``exc``: a child of the tree that cannot start comes
    out as the :class:`SnakepitError` it raised, or as a :class:`ConfigError` for an
    ``OSError`` (a port in use, a directory it cannot write), with the child's path in
    ``details["child"]`` — never as an otp ``StartError``. Anything else is ``exc`` itself.

        startup_error(otp.StartError("metrics", OSError(98, "Address already in use"),
                                     "application"))
        # -> ConfigError("application/metrics cannot start: [Errno 98] ...")
    """
    if not isinstance(exc, otp.StartError):
        return exc
    path = [exc.supervisor] if exc.supervisor else []
    cause: BaseException = exc
    while isinstance(cause, otp.StartError):
        path.append(str(cause.child_id))
        cause = otp.unwrap_group(cause.cause)
    child = "/".join(path)
    if isinstance(cause, SnakepitError):
        cause.details.setdefault("child", child)
        cause.__cause__ = None
        return cause
    error: SnakepitError
    if isinstance(cause, OSError):
        error = ConfigError(f"{child} cannot start: {cause}",
                            details={"child": child, "errno": cause.errno})
    else:
        error = SnakepitError(f"{child} cannot start: {type(cause).__name__}: {cause}",
                              details={"child": child})
    error.__cause__ = cause
    return error


def _supervision_event(host: HostContext, event: Any) -> None:
    host.emit(("snakepit", "supervisor", event.kind), {"restarts": event.restarts},
              {"supervisor": event.supervisor, "child_id": repr(event.child_id),
               "exit_kind": event.exit_kind,
               "error": repr(event.error) if event.error is not None else None})


async def _wait_ready(config: Config, host: HostContext) -> None:
    """Wait until every pool is ready; fail on a required pool's first failed start."""
    async def one(pool: PoolConfig) -> None:
        t0 = trio.current_time()
        host.emit(("snakepit", "pool", "init_started"), {"size": pool.size},
                  {"pool": pool.name})
        runtime: PoolRuntime = await host.registry.wait_registered(("pool_runtime", pool.name))
        async with trio.open_nursery() as nursery:
            async def failed() -> None:
                await runtime.failed.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(failed)
            await runtime.ready.wait()
            nursery.cancel_scope.cancel()
        if not runtime.ready.is_set() and runtime.initial_failure is not None:
            err = runtime.initial_failure
            if pool.required:
                raise type(err)(f"pool {pool.name!r} cannot start: {err.message}",
                                details={"pool": pool.name, **err.details},
                                remote_type=err.remote_type,
                                remote_traceback=err.remote_traceback)
            log.error("pool %r cannot start (required=False, the others go on): %s",
                      pool.name, err)
        else:
            host.emit(("snakepit", "pool", "init_complete"),
                      {"duration": trio.current_time() - t0, "workers": len(runtime.workers)},
                      {"pool": pool.name})

    try:
        async with trio.open_nursery() as nursery:
            for pool in config.pools:
                nursery.start_soon(one, pool)
    except BaseExceptionGroup as group:
        errors = [e for e in group.exceptions if isinstance(e, SnakepitError)]
        raise (errors[0] if errors else otp.unwrap_group(group)) from None


async def _process_registry(host: HostContext, *,
                            task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                            ) -> None:
    from snakepit.pool.process_registry import ProcessRegistry

    registry = ProcessRegistry.open(host.state_dir, instance_name=host.config.instance_name,
                                    run_id=host.run_id)
    try:
        report = await trio.to_thread.run_sync(registry.sweep)
        if report.killed:
            log.warning("killed %d orphaned worker(s) of dead earlier runs: %s",
                        len(report.killed), report.killed)
        with host.registry.register(PROCESS_REGISTRY, registry):
            task_status.started(registry)
            await trio.sleep_forever()
    finally:
        registry.close()


async def _host_bridge(host: HostContext, *,
                       task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    from snakepit.hostbridge.server import run_host_bridge

    from snakepit.hostbridge.handler import HostServices

    services = HostServices(host.tools, host.sessions)
    async with trio.open_nursery() as nursery:
        link = host.ray
        remote = (link.ca.host, link.node_address) if link is not None else None
        info = await nursery.start(functools.partial(
            run_host_bridge, host.secret, services, remote=remote))
        with host.registry.register(HOST_BRIDGE, BridgeHandle(info.address, services,
                                                              info.remote_address)):
            task_status.started(info)
            await trio.sleep_forever()


async def _ray(host: HostContext, placement: Any, *,
               task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    from snakepit.placement.ray import run_ray_link
    async with trio.open_nursery() as nursery:
        link = await nursery.start(run_ray_link, placement)
        with host.registry.register(RAY, link):
            task_status.started(link)
            await trio.sleep_forever()


async def _sessions(host: HostContext, *,
                    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    from snakepit.sessions import SessionStore, session_sweeper
    from snakepit.sessions.sqlite import SqliteSessions

    cfg = host.config.sessions
    backend = None
    if cfg.store == "sqlite":
        path = host.state_dir / f"sessions-{host.config.instance_name}.sqlite3"
        backend = await trio.to_thread.run_sync(SqliteSessions, path)
    try:
        store = SessionStore(cfg, backend)

        async def session_ended(session_id: str, reason: str) -> None:
            host.tools.drop_session(session_id)
            host.emit(("snakepit", "session", reason), {}, {"session_id": session_id})
            for pool in host.config.pools:
                target = host.registry.whereis(("pool", pool.name))
                if target is not None:
                    await target.end_session(session_id)

        async def session_rebound(session_id: str) -> None:
            for pool in host.config.pools:
                target = host.registry.whereis(("pool", pool.name))
                if target is not None:
                    await target.end_session(session_id)   # drops the affinity

        store.on_end.append(session_ended)
        store.on_rebind.append(session_rebound)
        store.emit = host.emit
        with host.registry.register(SESSIONS, store):
            await session_sweeper(store, task_status=task_status)
    finally:
        if backend is not None:
            backend.close()


async def _admin(host: HostContext, *,
                 task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    from snakepit.admin import serve_admin
    await serve_admin(host, task_status=task_status)


async def _metrics(host: HostContext, address: str, *,
                   task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    from snakepit.telemetry.metrics import serve_prometheus
    await serve_prometheus(host, address, task_status=task_status)
