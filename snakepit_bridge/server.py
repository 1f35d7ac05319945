"""The worker process: a grpc.aio WorkerService around a ToolDispatcher, and its lifetime.

Lifetime (the worker contract, protos/README.md): initialize the adapter, bind 127.0.0.1:0,
serve, *then* write the readiness line to the ready fd. Exit when stdin reaches EOF (the host is
gone), when host heartbeats stop (if dependent), or on SIGTERM/SIGINT (graceful: in-flight work
gets ``shutdown_grace`` seconds, then ``adapter.shutdown()``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import attrs
import grpc

from snakepit_bridge import serialization, telemetry
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.context import SECRET_HEADER, HostClient
from snakepit_bridge.dispatch import ToolDispatcher, _maybe_await
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg

log = logging.getLogger("snakepit_bridge")

MAX_MESSAGE = 256 * 1024 * 1024
GRPC_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0)]

EXIT_OK, EXIT_USAGE, EXIT_INIT, EXIT_HOST_LOST = 0, 2, 3, 4


@attrs.frozen
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


class _Auth(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Every call must carry the per-run secret; anything else is UNAUTHENTICATED."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        for key, value in details.invocation_metadata or ():
            if key == SECRET_HEADER:
                given = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(given, self._secret):
                    return await continuation(details)
        return _deny(details.method)


def _deny(method: str) -> Any:
    async def abort(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong secret")

    async def abort_stream(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong secret")
        yield  # pragma: no cover

    if method.endswith("/ExecuteStream"):
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    if method.endswith("/StreamTelemetry"):
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)


class WorkerServicer(pbg.WorkerServiceServicer):  # type: ignore[misc]
    def __init__(self, dispatcher: ToolDispatcher, opts: Options, adapter: BaseAdapter,
                 lifetime: "Lifetime") -> None:
        self.d, self.opts, self.adapter, self.lifetime = dispatcher, opts, adapter, lifetime

    def _ping(self, request: Any) -> Any:
        return pb.PingResponse(message=request.message or "pong", worker_id=self.opts.worker_id,
                               pid=os.getpid(), timestamp=time.time())

    def _heartbeat(self, request: Any) -> Any:
        self.lifetime.last_heartbeat = time.monotonic()
        return pb.HeartbeatResponse(seq=request.seq, worker_id=self.opts.worker_id,
                                    in_flight=self.d.in_flight, rss_bytes=_rss(),
                                    timestamp=time.time(), running=list(self.d.running))

    async def Ping(self, request: Any, context: Any) -> Any:
        return self._ping(request)

    async def Heartbeat(self, request: Any, context: Any) -> Any:
        return self._heartbeat(request)

    async def Describe(self, request: Any, context: Any) -> Any:
        return self._describe()

    def _describe(self) -> Any:
        tools = []
        for t in self.d.tools.values():
            params = [pb.ParameterSpec(name=p.name, type=p.type_name, required=p.required,
                                       default_json=b"" if p.required
                                       else serialization.dumps(p.default),
                                       description=p.description) for p in t.params]
            tools.append(pb.ToolSpec(name=t.name, description=t.description, parameters=params,
                                     streaming=t.streaming))
        return pb.DescribeResponse(
            adapter=self.adapter.adapter_name(), version=self.adapter.version,
            language="python", capacity=self.opts.max_concurrency, tools=tools,
            worker_id=self.opts.worker_id, pid=os.getpid(),
            runtime_version=".".join(map(str, sys.version_info[:3])))

    async def Execute(self, request: Any, context: Any) -> Any:
        return await self.d.execute(request)

    async def ExecuteStream(self, request: Any, context: Any) -> Any:
        gen = self.d.stream(request)
        try:
            async for chunk in gen:
                yield chunk
        finally:
            await gen.aclose()

    async def InitSession(self, request: Any, context: Any) -> Any:
        created = await self.d.init_session(request.session_id,
                                            serialization.loads(request.metadata_json))
        return pb.InitSessionResponse(created=created)

    async def EndSession(self, request: Any, context: Any) -> Any:
        return pb.EndSessionResponse(existed=await self.d.end_session(request.session_id))

    async def StreamTelemetry(self, request_iterator: Any, context: Any) -> Any:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        telemetry.buffer.waker = lambda: loop.call_soon_threadsafe(wake.set)

        async def controls() -> None:
            async for control in request_iterator:
                apply_telemetry_control(control)

        reader = asyncio.ensure_future(controls())
        try:
            while True:
                wake.clear()
                for event in telemetry_messages(self.opts.worker_id):
                    yield event
                if not telemetry.buffer.events:
                    await wake.wait()
        finally:
            telemetry.buffer.waker = None
            reader.cancel()


def apply_telemetry_control(control: pb.TelemetryControl) -> None:
    telemetry.buffer.configure(control.enabled, control.sampling_rate, control.allow,
                               control.deny)
    # Acknowledge, past any filter, so the host knows when it applies.
    telemetry.buffer.put("telemetry.configured", {"sampling_rate": control.sampling_rate}, {
        "enabled": control.enabled, "allow": list(control.allow), "deny": list(control.deny)},
        force=True)


def telemetry_messages(worker_id: str) -> list[pb.TelemetryEvent]:
    """Everything queued so far, as messages (the first carries the dropped count)."""
    events, dropped = telemetry.buffer.drain()
    out = []
    for name, measurements, metadata, ts, corr in events:
        out.append(pb.TelemetryEvent(
            event=name.split("."), measurements_json=serialization.dumps(measurements),
            metadata_json=serialization.dumps(metadata), timestamp=ts, correlation_id=corr,
            worker_id=worker_id, dropped=dropped))
        dropped = 0
    return out


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Lifetime:
    """Why and when the worker stops."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.stop = asyncio.Event()
        self.exit_code = EXIT_OK
        self.grace = opts.shutdown_grace
        self.last_heartbeat = time.monotonic()

    def request_stop(self, code: int, grace: float, why: str) -> None:
        if not self.stop.is_set():
            log.info("worker %s stopping: %s", self.opts.worker_id, why)
            self.exit_code, self.grace = code, grace
            self.stop.set()

    def watch_stdin(self, loop: asyncio.AbstractEventLoop) -> None:
        """A thread reading stdin to EOF: EOF means the host is gone (even after kill -9)."""
        def reader() -> None:
            try:
                while os.read(0, 65536):
                    pass
            except OSError:
                pass
            try:
                loop.call_soon_threadsafe(self.request_stop, EXIT_HOST_LOST, 0.5,
                                          "stdin closed: the host is gone")
            except RuntimeError:
                pass   # the loop has finished: the worker is exiting anyway
        threading.Thread(target=reader, name="snakepit-stdin", daemon=True).start()

    async def watchdog(self, host: HostClient | None) -> None:
        timeout = self.opts.heartbeat_timeout
        if timeout <= 0:
            return
        while not self.stop.is_set():
            await asyncio.sleep(min(self.opts.heartbeat_interval, timeout) / 2 or 0.5)
            if time.monotonic() - self.last_heartbeat < timeout:
                continue
            if host is not None and host.address and await _probe(host):
                self.last_heartbeat = time.monotonic()
                continue
            if self.opts.dependent:
                self.request_stop(EXIT_HOST_LOST, 0.5,
                                  f"no host heartbeat for {timeout} s (dependent)")
                return
            log.warning("no host heartbeat for %s s; not dependent, serving on", timeout)
            self.last_heartbeat = time.monotonic()


async def _probe(host: HostClient) -> bool:
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, lambda: host.call(
            "Heartbeat", pb.WorkerHeartbeat(worker_id=host.worker_id, sent_at=time.time()),
            timeout=2.0))
        return True
    except Exception:
        return False


async def serve(adapter: BaseAdapter, opts: Options) -> int:
    loop = asyncio.get_running_loop()
    lifetime = Lifetime(opts)
    lifetime.watch_stdin(loop)
    pipe_server: Any = None
    host: Any = None
    if opts.pipe_fd is not None:
        from snakepit_bridge.pipe_server import PipeServer
        pipe_server = PipeServer(opts.pipe_fd, opts.worker_id)
        host = pipe_server.host
    elif opts.host_address:
        host = HostClient(opts.host_address, opts.secret, opts.worker_id)
    try:
        await _maybe_await(adapter.initialize())
    except Exception:
        log.exception("adapter %s failed to initialize", adapter.adapter_name())
        return EXIT_INIT
    dispatcher = ToolDispatcher(adapter, worker_id=opts.worker_id, host=host,
                                max_concurrency=opts.max_concurrency)
    servicer = WorkerServicer(dispatcher, opts, adapter, lifetime)
    server: Any = None
    pipe: Any = None
    if pipe_server is not None:
        pipe_server.attach(servicer, dispatcher)
        reader = await pipe_server.connect()

        async def serve_pipe() -> None:
            await pipe_server.serve(reader)
            lifetime.request_stop(EXIT_HOST_LOST, 0.5, "pipe closed: the host is gone")
        pipe = asyncio.ensure_future(serve_pipe())
        port = 0
    else:
        server = grpc.aio.server(options=GRPC_OPTIONS, interceptors=[_Auth(opts.secret)])
        pbg.add_WorkerServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lifetime.request_stop, EXIT_OK, opts.shutdown_grace,
                                f"signal {sig.name}")
    _report_ready(opts, port)
    lifetime.last_heartbeat = time.monotonic()
    watchdog = asyncio.ensure_future(lifetime.watchdog(host))
    await lifetime.stop.wait()
    watchdog.cancel()
    if server is not None:
        await server.stop(lifetime.grace)
    if pipe is not None:
        if lifetime.exit_code == EXIT_OK:
            # graceful stop: in-flight requests get the grace, as on the gRPC server
            pending = [t for t in pipe_server.tasks.values() if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=lifetime.grace)
        pipe.cancel()
    try:
        await asyncio.wait_for(_maybe_await(adapter.shutdown()), max(lifetime.grace, 1.0))
    except Exception:
        log.exception("adapter shutdown failed")
    dispatcher.close()
    return lifetime.exit_code


def _report_ready(opts: Options, port: int) -> None:
    line = json.dumps({"port": port, "pid": os.getpid(), "worker_id": opts.worker_id,
                       "language": opts.language, "protocol": 1,
                       "transport": "pipe" if opts.pipe_fd is not None else "grpc"}) + "\n"
    if opts.ready_fd is None:
        sys.stdout.write(line)
        sys.stdout.flush()
        return
    data = line.encode()
    while data:
        data = data[os.write(opts.ready_fd, data):]
    os.close(opts.ready_fd)
