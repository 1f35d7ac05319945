"""Launching one worker process of a pool: command line, environment, registry."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import attrs
import trio

from snakepit.adapters.base import LaunchOptions
from snakepit.config import PoolConfig
from snakepit.errors import WorkerStartError
from snakepit.pool.process import WorkerProcess
from snakepit.pool.zygote import Zygote
from snakepit_bridge import shm
from snakepit_bridge.protocol import GRPC_FORK_SUPPORT_ENV, SECRET_ENV, THREAD_LIMIT_VARS

if TYPE_CHECKING:
    from snakepit.pool.process_registry import ProcessRegistry
    from snakepit.pool.runtime import PoolRuntime
    from snakepit.pool.worker import Worker


def worker_env(config: PoolConfig, adapter: Any, opts: LaunchOptions, secret: str
               ) -> dict[str, str]:
    env = dict(os.environ)
    limits = config.thread_limits if config.thread_limits is not None else \
        {var: "1" for var in THREAD_LIMIT_VARS}
    env.update(limits)
    env[GRPC_FORK_SUPPORT_ENV] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(adapter.env(opts))
    env.update(config.env)
    env[SECRET_ENV] = secret   # never on a command line; the worker removes it
    return env


@attrs.frozen
class LaunchContext:
    """What launching a pool's workers needs from the host: fixed once the host's services
    are up (the pools start after them), handed to each pool's runtime."""

    secret: str
    host_address: str
    shm_prefix: str
    log_level: str
    process_registry: "ProcessRegistry | None" = None


def _options(host: LaunchContext, config: PoolConfig, worker_id: str, capacity: int,
             ready_fd: int, pipe_fd: int | None) -> LaunchOptions:
    hb = config.heartbeat
    level = host.log_level
    return LaunchOptions(
        pipe_fd=pipe_fd, worker_id=worker_id, host_address=host.host_address, ready_fd=ready_fd,
        max_concurrency=capacity, log_level="error" if level == "none" else level,
        heartbeat_interval=hb.interval, heartbeat_timeout=hb.timeout, dependent=hb.dependent,
        shutdown_grace=config.shutdown_grace)


async def spawn_worker(host: LaunchContext, config: PoolConfig, worker: "Worker",
                       nursery: trio.Nursery) -> WorkerProcess:
    runtime = worker.runtime
    adapter = runtime.adapter
    keeper = runtime.zygote if config.preload else None
    if config.preload and keeper is None:
        raise WorkerStartError(f"worker {worker.id}: the pool's zygote is not running")
    zygote = await keeper.running() if keeper is not None else None   # waits for a restart
    pipe = socket.socketpair() if config.resolved_transport == "pipe" else None
    child_fd = pipe[1].fileno() if pipe else None

    def options(fd: int) -> LaunchOptions:
        return _options(host, config, worker.id, worker.capacity, fd, child_fd)

    env = worker_env(config, adapter, options(-1), host.secret)
    if pipe:
        env[shm.PREFIX_ENV] = host.shm_prefix
    try:
        process = await WorkerProcess.spawn(
            lambda fd: adapter.command(options(fd)), env=env, cwd=adapter.cwd,
            worker_id=worker.id, nursery=nursery, registry=host.process_registry,
            extra_fds=(child_fd,) if child_fd is not None else (), zygote=zygote)
    except BaseException:
        if pipe:
            pipe[0].close()
        raise
    finally:
        if pipe:
            pipe[1].close()     # the child has its copy
    if pipe:
        process.pipe_socket = pipe[0]
    return process


async def start_zygote(host: LaunchContext, runtime: "PoolRuntime", nursery: trio.Nursery
                       ) -> Zygote:
    """Start the pool's zygote (``preload=True``) and wait until it has imported everything."""
    config, adapter = runtime.config, runtime.adapter
    control, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote_id = f"{config.name}-zygote"

    def argv_for(fd: int) -> list[str]:
        return [adapter.interpreter, "-m", "snakepit_bridge.zygote", "--adapter", adapter.spec,
                "--control-fd", str(child.fileno()), "--ready-fd", str(fd),
                "--transport", config.resolved_transport]

    env = worker_env(config, adapter, _options(host, config, zygote_id, 1, -1, None), "")
    del env[SECRET_ENV]   # each fork gets it with its own environment
    try:
        process = await WorkerProcess.spawn(
            argv_for, env=env, cwd=adapter.cwd, worker_id=zygote_id, nursery=nursery,
            registry=host.process_registry, extra_fds=(child.fileno(),))
    except BaseException:
        control.close()
        raise
    finally:
        child.close()
    try:
        await process.wait_ready(config.startup_timeout)
    except BaseException:
        control.close()
        with trio.CancelScope(shield=True):
            await process.terminate(1.0)
        raise
    return Zygote(process, control, process.argv)
