"""The Transport interface: everything a Worker says to its process goes through it.

Messages are the generated ``bridge_pb2`` messages, so a second transport (length-prefixed
frames of the same messages over a socketpair) can replace gRPC without the pool noticing.
Failures are snakepit errors: the process unreachable → ``WorkerCrashed``; deadline →
``RequestTimeout``; protocol or authentication trouble → ``TransportError``. Cancelling the
calling trio task cancels the call in the worker.
"""

from __future__ import annotations

from typing import Any, AsyncContextManager, AsyncIterator, Protocol

from snakepit_bridge.proto import bridge_pb2 as pb


class Transport(Protocol):
    async def ping(self) -> pb.PingResponse: ...

    async def heartbeat(self, seq: int) -> pb.HeartbeatResponse: ...

    async def describe(self) -> pb.DescribeResponse: ...

    async def execute(self, request: pb.ExecuteRequest, *,
                      timeout: float | None = None) -> pb.ExecuteResponse: ...

    def stream(self, request: pb.ExecuteRequest
               ) -> AsyncContextManager[AsyncIterator[pb.ToolChunk]]: ...

    async def init_session(self, session_id: str, metadata_json: bytes = b"") -> Any: ...

    async def end_session(self, session_id: str) -> Any: ...

    async def aclose(self) -> None: ...
