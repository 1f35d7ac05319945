"""The gRPC carrier: a grpc.aio WorkerService on 127.0.0.1:0 over the worker core.

With TLS material (a remote placement) it binds ``bind_host`` (the address Ray reports for the
node) instead and serves mutual TLS with the per-run CA; without it, loopback only.

    carrier = GrpcCarrier(secret, host=HostClient(address, secret, worker_id))
    port = await carrier.start(core, lifetime)    # serving; report the port
    await carrier.stop(grace=5.0)

Every call must carry the per-run secret (``protocol.SECRET_HEADER``); each RPC is one call
into :class:`~snakepit_bridge.core.WorkerCore`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

try:   # what hmac.compare_digest is, without hmac's import of OpenSSL (~0.5 MB per worker)
    from _operator import _compare_digest as compare_digest
except ImportError:  # pragma: no cover  (an interpreter without it: hmac's)
    from hmac import compare_digest  # type: ignore[no-redef]

import grpc

from snakepit_bridge.context import HostCaller
from snakepit_bridge.core import WorkerCore
from snakepit_bridge.lifetime import Lifetime
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg
from snakepit_bridge.protocol import GRPC_MESSAGE_OPTIONS, SECRET_HEADER
from snakepit_bridge.tls import Tls, host_port

SERVER_OPTIONS = [*GRPC_MESSAGE_OPTIONS, ("grpc.so_reuseport", 0)]


class _Authenticated(grpc.GenericRpcHandler):  # type: ignore[misc]
    """WorkerService's handlers for calls that carry the per-run secret; any other call is
    UNAUTHENTICATED. A generic handler checks the secret as grpcio looks the method up, with
    no coroutine per call (an interceptor costs one)."""

    def __init__(self, secret: str, servicer: "WorkerServicer") -> None:
        self._secret = secret.encode()
        self._service = _service_handler(servicer)

    def service(self, details: Any) -> Any:
        for key, value in details.invocation_metadata or ():
            if key == SECRET_HEADER:
                given = value.encode() if isinstance(value, str) else value
                if compare_digest(given, self._secret):
                    return self._service.service(details)
        return _deny(details.method)


def _service_handler(servicer: "WorkerServicer") -> Any:
    """The generated code's generic handler for ``servicer`` (it is handed to the server
    there; its registered-method handlers would answer without the secret check)."""
    found: list[Any] = []

    class Collect:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            found.extend(handlers)

        def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
            pass

    pbg.add_WorkerServiceServicer_to_server(servicer, Collect())  # type: ignore[no-untyped-call]
    [handler] = found
    return handler


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
    """WorkerService: each RPC is the core's method of the same name."""

    def __init__(self, core: WorkerCore) -> None:
        self.core = core

    async def Ping(self, request: pb.PingRequest, context: Any) -> pb.PingResponse:
        return self.core.ping(request)

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Any
                        ) -> pb.HeartbeatResponse:
        return self.core.heartbeat(request)

    async def Describe(self, request: pb.DescribeRequest, context: Any) -> pb.DescribeResponse:
        return self.core.describe()

    async def Execute(self, request: pb.ExecuteRequest, context: Any) -> pb.ExecuteResponse:
        return await self.core.execute(request)

    async def ExecuteStream(self, request: pb.ExecuteRequest, context: Any
                            ) -> AsyncIterator[pb.ToolChunk]:
        async with contextlib.aclosing(self.core.stream(request)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def InitSession(self, request: pb.InitSessionRequest, context: Any
                          ) -> pb.InitSessionResponse:
        return await self.core.init_session(request)

    async def EndSession(self, request: pb.EndSessionRequest, context: Any
                         ) -> pb.EndSessionResponse:
        return await self.core.end_session(request)

    async def StreamTelemetry(self, request_iterator: Any, context: Any
                              ) -> AsyncIterator[pb.TelemetryEvent]:
        async def controls() -> None:
            async for control in request_iterator:
                self.core.configure_telemetry(control)

        reader = asyncio.ensure_future(controls())
        try:
            async with contextlib.aclosing(self.core.telemetry_batches()) as batches:
                async for batch in batches:
                    for event in batch:
                        yield event
        finally:
            reader.cancel()


class GrpcCarrier:
    """Serves the core over gRPC; the worker's host calls go to the host's HostService."""

    transport = "grpc"

    def __init__(self, secret: str, host: HostCaller | None, *, tls: Tls | None = None,
                 bind_host: str = "127.0.0.1") -> None:
        if tls is None and bind_host != "127.0.0.1":
            # plaintext never leaves loopback
            raise ValueError(f"bind_host {bind_host!r} needs TLS material; without it a "
                             f"worker serves on 127.0.0.1 only")
        if bind_host in ("", "0.0.0.0", "::"):
            raise ValueError(f"bind_host must be one address, got {bind_host!r}")
        self._secret = secret
        self._host = host
        self._tls = tls
        self._bind_host = bind_host
        self._server: Any = None

    @property
    def host(self) -> HostCaller | None:
        return self._host

    async def start(self, core: WorkerCore, lifetime: Lifetime) -> int:
        self._server = grpc.aio.server(options=SERVER_OPTIONS)
        self._server.add_generic_rpc_handlers([_Authenticated(self._secret,
                                                              WorkerServicer(core))])
        where = host_port(self._bind_host, 0)
        port: int = self._server.add_secure_port(where, self._tls.server_credentials()) \
            if self._tls is not None else self._server.add_insecure_port(where)
        await self._server.start()
        return port

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
