"""Launching one worker process of a pool: command line, environment, registry."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import trio

from snakepit.adapters.base import LaunchOptions
from snakepit.config import PoolConfig
from snakepit.pool.process import WorkerProcess
from snakepit_bridge import shm

if TYPE_CHECKING:
    from snakepit.application import HostContext
    from snakepit.pool.worker import Worker

THREAD_LIMIT_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS")


def worker_env(config: PoolConfig, adapter: Any, opts: LaunchOptions, secret: str
               ) -> dict[str, str]:
    env = dict(os.environ)
    limits = config.thread_limits if config.thread_limits is not None else \
        {var: "1" for var in THREAD_LIMIT_VARS}
    env.update(limits)
    env["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(adapter.env(opts))
    env.update(config.env)
    env["SNAKEPIT_SECRET"] = secret   # never on a command line; the worker removes it
    return env


async def spawn_worker(host: "HostContext", config: PoolConfig, worker: "Worker",
                       nursery: trio.Nursery) -> WorkerProcess:
    adapter = worker.runtime.adapter
    hb = config.heartbeat
    level = host.config.log_level

    pipe = socket.socketpair() if config.transport == "pipe" else None
    child_fd = pipe[1].fileno() if pipe else None

    def options(fd: int) -> LaunchOptions:
        return LaunchOptions(pipe_fd=child_fd,
            worker_id=worker.id, host_address=host.host_address, ready_fd=fd,
            max_concurrency=worker.capacity, log_level="error" if level == "none" else level,
            heartbeat_interval=hb.interval, heartbeat_timeout=hb.timeout,
            dependent=hb.dependent, shutdown_grace=config.shutdown_grace)

    env = worker_env(config, adapter, options(-1), host.secret)
    if pipe:
        env[shm.PREFIX_ENV] = host.shm_prefix
    try:
        process = await WorkerProcess.spawn(
            lambda fd: adapter.command(options(fd)), env=env, cwd=adapter.cwd,
            worker_id=worker.id, nursery=nursery, registry=host.process_registry,
            extra_fds=(child_fd,) if child_fd is not None else ())
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
