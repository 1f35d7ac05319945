"""Running one worker process: adapter -> core -> carrier, for as long as its lifetime lasts.

    code = asyncio.run(serve(adapter, Options(worker_id="w-1", ready_fd=5, ...)))

The worker contract (protos/README.md): initialize the adapter, start serving (a gRPC server on
127.0.0.1:0, or frames on the ``--pipe-fd`` socket), *then* write the readiness line. Exit when
stdin reaches EOF or the pipe closes (the host is gone), when host heartbeats stop (if
dependent), or on SIGTERM/SIGINT (graceful: in-flight work gets ``shutdown_grace`` seconds,
then ``adapter.shutdown()``).
"""

from __future__ import annotations

from snakepit_bridge.lazy_ssl import import_asyncio

import_asyncio()   # before asyncio is imported otherwise: ssl waits for TLS

import asyncio
import dataclasses
import logging
import time
from typing import Awaitable, Callable, Protocol

from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.context import HostCaller, HostClient
from snakepit_bridge.core import WorkerCore
from snakepit_bridge.dispatch import maybe_await
from snakepit_bridge.lifetime import Lifetime, LifetimeConfig, ready_line, report_ready
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.protocol import EXIT_INIT, HOST_PROBE_TIMEOUT
from snakepit_bridge.tls import Tls

log = logging.getLogger("snakepit_bridge")


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    worker_id: str
    ready_fd: int | None
    host_address: str
    max_concurrency: int
    heartbeat_interval: float
    heartbeat_timeout: float
    dependent: bool
    shutdown_grace: float
    secret: str
    language: str = "python"
    pipe_fd: int | None = None    # serve Frames on this socket instead of a gRPC server
    tls: Tls | None = None        # a remote placement: mutual TLS both ways ...
    bind_host: str = "127.0.0.1"  # ... on the address Ray reports for this node


class Carrier(Protocol):
    """What carries requests to the core: the gRPC server or the pipe."""

    transport: str

    @property
    def host(self) -> HostCaller | None:
        """The worker's line to the host over this carrier, if it has one."""

    async def start(self, core: WorkerCore, lifetime: Lifetime) -> int:
        """Start serving ``core``; returns the port to report (0: none). A carrier that
        loses its host calls ``lifetime.host_lost``."""

    async def stop(self, grace: float) -> None:
        """Stop serving; in-flight requests get ``grace`` seconds, then are cancelled."""


def carrier_for(opts: Options) -> Carrier:
    if opts.pipe_fd is not None:
        from snakepit_bridge.pipe_server import PipeServer
        return PipeServer(opts.pipe_fd, opts.worker_id)
    from snakepit_bridge.server import GrpcCarrier
    return GrpcCarrier(opts.secret, host=HostClient(opts.host_address, opts.secret,
                                                    opts.worker_id, tls=opts.tls)
                       if opts.host_address else None, tls=opts.tls, bind_host=opts.bind_host)


async def serve(adapter: BaseAdapter, opts: Options) -> int:
    """Serve until the lifetime ends; returns the process's exit code."""
    lifetime = Lifetime(LifetimeConfig(
        heartbeat_interval=opts.heartbeat_interval, heartbeat_timeout=opts.heartbeat_timeout,
        dependent=opts.dependent, shutdown_grace=opts.shutdown_grace), opts.worker_id)
    lifetime.watch_stdin()
    carrier = carrier_for(opts)
    try:
        await maybe_await(adapter.initialize())
    except Exception:
        log.exception("adapter %s failed to initialize", adapter.adapter_name())
        return EXIT_INIT
    core = WorkerCore(adapter, worker_id=opts.worker_id, capacity=opts.max_concurrency,
                      host=carrier.host, language=opts.language,
                      on_heartbeat=lifetime.heartbeat)
    port = await carrier.start(core, lifetime)
    lifetime.handle_signals()
    report_ready(opts.ready_fd, ready_line(port=port, worker_id=opts.worker_id,
                                           transport=carrier.transport,
                                           language=opts.language))
    lifetime.heartbeat()
    watchdog = asyncio.ensure_future(lifetime.watchdog(host_probe(carrier.host)))
    await lifetime.wait_stopped()
    watchdog.cancel()
    await carrier.stop(lifetime.grace)
    try:
        await asyncio.wait_for(maybe_await(adapter.shutdown()), max(lifetime.grace, 1.0))
    except Exception:
        log.exception("adapter shutdown failed")
    core.close()
    lifetime.signals_done()
    return lifetime.exit_code


def host_probe(host: HostCaller | None) -> Callable[[], Awaitable[bool]] | None:
    """Whether the host answers a heartbeat of ours (gRPC hosts only: on the pipe, its EOF
    already says the host is gone)."""
    if host is None or not host.address:
        return None

    async def probe() -> bool:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: host.call(
                "Heartbeat", pb.WorkerHeartbeat(worker_id=host.worker_id, sent_at=time.time()),
                timeout=HOST_PROBE_TIMEOUT))
            return True
        except Exception:
            return False
    return probe
