"""HostBridge: the host's HostService, served to workers on 127.0.0.1 with the per-run secret.

grpcio's server runs handlers on its own threads; each handler enters trio with
``trio.from_thread.run(..., trio_token=...)`` to reach the host's objects (tool registry,
session store), so all host state is touched only from the trio thread. ``run_host_bridge``
follows the ``nursery.start`` protocol and reports a :class:`HostBridgeInfo`.
"""

from __future__ import annotations

import concurrent.futures
import hmac
import time
from typing import Any, Protocol

import attrs
import grpc
import trio

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg

from snakepit_bridge.protocol import GRPC_MESSAGE_OPTIONS, SECRET_HEADER
THREADS = 16


@attrs.frozen
class HostBridgeInfo:
    address: str
    port: int
    remote_address: str = ""   # the TLS listener for remote workers, when there is one


class HostHandler(Protocol):
    """What the host answers; every method runs on the trio thread."""

    async def call_host_tool(self, request: pb.CallHostToolRequest) -> pb.ExecuteResponse: ...

    async def list_host_tools(self, request: pb.ListHostToolsRequest
                              ) -> pb.ListHostToolsResponse: ...

    async def get_variable(self, request: pb.GetVariableRequest) -> pb.VariableResponse: ...

    async def set_variable(self, request: pb.SetVariableRequest) -> pb.VariableResponse: ...

    async def get_program(self, request: pb.GetProgramRequest) -> pb.ProgramResponse: ...

    async def store_program(self, request: pb.StoreProgramRequest) -> pb.ProgramResponse: ...


def error(category: str, type_: str, message: str, **details: Any) -> pb.ErrorInfo:
    return pb.ErrorInfo(category=category, type=type_, message=message,
                        details_json=serialization.dumps(details))


class NoHostServices:
    """The default handler: no host tools, no session store."""

    async def call_host_tool(self, request: Any) -> Any:
        return pb.ExecuteResponse(success=False, error=error(
            "unknown_tool", "UnknownTool", f"no host tool named {request.tool!r}",
            tool=request.tool, available=[]))

    async def list_host_tools(self, request: Any) -> Any:
        return pb.ListHostToolsResponse()

    async def get_variable(self, request: Any) -> Any:
        return pb.VariableResponse(success=False, error=error(
            "session", "Unavailable", "the host has no session store"))

    set_variable = get_variable

    async def get_program(self, request: Any) -> Any:
        return pb.ProgramResponse(success=False, error=error(
            "session", "Unavailable", "the host has no session store"))

    store_program = get_program


class _Auth(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

        def deny(request: Any, context: Any) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong secret")
        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        for key, value in details.invocation_metadata or ():
            if key == SECRET_HEADER and hmac.compare_digest(value.encode(), self._secret):
                return continuation(details)
        return self._deny


class _Servicer(pbg.HostServiceServicer):  # type: ignore[misc]
    def __init__(self, handler: Any, token: trio.lowlevel.TrioToken) -> None:
        self._handler, self._token = handler, token

    def _enter(self, method: str, request: Any, context: Any) -> Any:
        try:
            return trio.from_thread.run(getattr(self._handler, method), request,
                                        trio_token=self._token)
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the host is shutting down")

    def CallHostTool(self, request: Any, context: Any) -> Any:
        return self._enter("call_host_tool", request, context)

    def ListHostTools(self, request: Any, context: Any) -> Any:
        return self._enter("list_host_tools", request, context)

    def GetVariable(self, request: Any, context: Any) -> Any:
        return self._enter("get_variable", request, context)

    def SetVariable(self, request: Any, context: Any) -> Any:
        return self._enter("set_variable", request, context)

    def GetProgram(self, request: Any, context: Any) -> Any:
        return self._enter("get_program", request, context)

    def StoreProgram(self, request: Any, context: Any) -> Any:
        return self._enter("store_program", request, context)

    def Heartbeat(self, request: Any, context: Any) -> Any:
        return pb.HostHeartbeat(seq=request.seq, timestamp=time.time())


async def run_host_bridge(secret: str, handler: Any = None, *, remote: Any = None,
                          task_status: trio.TaskStatus[HostBridgeInfo] =
                          trio.TASK_STATUS_IGNORED) -> None:
    """Serve HostService until cancelled; reports the bound address once listening.

    ``remote``: (``snakepit_bridge.tls.Tls``, node address) for a remote placement: the same
    service also listens there, with mutual TLS (never on 0.0.0.0)."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(
        max_workers=THREADS, thread_name_prefix="snakepit-hostbridge"),
        interceptors=[_Auth(secret)],
        options=[*GRPC_MESSAGE_OPTIONS, ("grpc.so_reuseport", 0)])
    pbg.add_HostServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _Servicer(handler or NoHostServices(), trio.lowlevel.current_trio_token()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    remote_address = ""
    if remote is not None:
        from snakepit_bridge.tls import host_port
        tls, node_address = remote
        remote_port = server.add_secure_port(host_port(node_address, 0),
                                             tls.server_credentials())
        remote_address = host_port(node_address, remote_port)
    server.start()
    try:
        task_status.started(HostBridgeInfo(address=f"127.0.0.1:{port}", port=port,
                                           remote_address=remote_address))
        await trio.sleep_forever()
    finally:
        # Handlers blocked in from_thread.run need this thread free: stop in a worker thread.
        with trio.CancelScope(shield=True):
            event = server.stop(grace=1.0)
            await trio.to_thread.run_sync(event.wait)
