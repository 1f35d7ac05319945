"""The Transport interface: everything a Worker says to its process goes through it.

Messages are the generated ``bridge_pb2`` messages, so the pipe transport (length-prefixed
frames of the same messages over a socketpair) and gRPC are interchangeable under the pool.
Failures are snakepit errors: the process unreachable → ``WorkerCrashed``; deadline →
``RequestTimeout``; protocol or authentication trouble → ``TransportError``. Cancelling the
calling trio task cancels the call in the worker. ``tests/transport/test_conformance.py`` holds
every implementation to this contract.
"""

from __future__ import annotations

from typing import AsyncContextManager, AsyncIterator, Protocol, Sequence

import trio

from snakepit.chunk import Chunk
from snakepit_bridge import protocol
from snakepit_bridge.proto import bridge_pb2 as pb

# Seconds each kind of call may take, the same on every transport. ``execute`` has none of
# its own: the caller's timeout bounds it, and the transport adds EXECUTE_BACKSTOP so that a
# worker that never answers still ends the call.
TIMEOUTS = {"ping": protocol.PING_TIMEOUT, "describe": protocol.DESCRIBE_TIMEOUT,
            "init_session": protocol.SESSION_TIMEOUT, "end_session": protocol.SESSION_TIMEOUT}
EXECUTE_BACKSTOP = protocol.DEADLINE_BACKSTOP


def backstop(timeout: float | None) -> float | None:
    return None if timeout is None else timeout + EXECUTE_BACKSTOP


class PackedResults(list):  # type: ignore[type-arg]
    """What ``execute_batch`` returns for a packed batch whose items all succeeded: their
    results, decoded, in order (instead of an ``ExecuteResponse`` each)."""


class TelemetryChannel(Protocol):
    """The worker's event stream (``events``) and its run-time filters (``send``)."""

    events: AsyncIterator[pb.TelemetryEvent]

    def send(self, control: pb.TelemetryControl) -> None: ...


class Transport(Protocol):
    async def start(self, nursery: trio.Nursery) -> None:
        """Start what the transport runs in the background (in the worker's nursery)."""

    async def ping(self) -> pb.PingResponse: ...

    async def heartbeat(self, seq: int) -> pb.HeartbeatResponse: ...

    async def describe(self) -> pb.DescribeResponse: ...

    async def execute(self, request: pb.ExecuteRequest, *, timeout: float | None = None,
                      deadline: float | None = None) -> pb.ExecuteResponse:
        """``timeout``: the worker's own limit (``request.timeout``), which the transport waits
        for plus EXECUTE_BACKSTOP; ``deadline`` (trio time): the caller's, at which the request
        is cancelled in the worker and ``errors.DeadlinePassed`` raised. A deadline costs less
        than a cancel scope around the call (a heap entry on the pipe, grpcio's own timer)."""

    async def execute_batch(self, batch: pb.ExecuteBatch, *, timeout: float | None = None,
                            deadline: float | None = None
                            ) -> Sequence[pb.ExecuteResponse] | PackedResults:
        """The batch's items in order, each with its own deadline; the responses stop after
        one that timed out (the items after it never ran). A packed batch (the pipe's) may
        come back as :class:`PackedResults`."""

    def stream(self, request: pb.ExecuteRequest
               ) -> AsyncContextManager[AsyncIterator[pb.ToolChunk | Chunk]]:
        """The stream's chunks in order: ``ToolChunk``s, or ``Chunk``s already decoded (the
        pipe's packed frames of plain chunks)."""

    def telemetry(self, control: pb.TelemetryControl
                  ) -> AsyncContextManager[TelemetryChannel]: ...

    async def init_session(self, session_id: str,
                           metadata_json: bytes = b"") -> pb.InitSessionResponse: ...

    async def end_session(self, session_id: str) -> pb.EndSessionResponse: ...

    async def aclose(self) -> None: ...
