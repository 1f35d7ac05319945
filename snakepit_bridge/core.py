"""The worker core: every answer a worker gives, whatever carries the requests.

    core = WorkerCore(adapter, worker_id="w-1", capacity=1, host=host_client)
    core.ping(pb.PingRequest(message="hi"))             # -> PingResponse
    await core.execute(request)                          # -> ExecuteResponse (ToolDispatcher)
    async for batch in core.telemetry_batches(): ...     # -> lists of TelemetryEvent

The carriers (``server.GrpcCarrier``, ``pipe_server.PipeServer``) only move these messages:
they decode a request, call the core, and send what it returns. Ping, heartbeat, describe,
sessions, tool dispatch and the telemetry loop exist once, here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import AsyncGenerator, Callable

from snakepit_bridge import serialization, telemetry
from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.context import HostCaller
from snakepit_bridge.dispatch import ToolDispatcher
from snakepit_bridge.proto import bridge_pb2 as pb


class WorkerCore:
    """The transport-neutral worker: one per process, shared by whichever carrier serves it.

    ``on_heartbeat`` is called for every host heartbeat (the lifetime's watchdog listens)."""

    def __init__(self, adapter: BaseAdapter, *, worker_id: str, capacity: int,
                 host: HostCaller | None, language: str = "python",
                 on_heartbeat: Callable[[], None] | None = None) -> None:
        self.adapter = adapter
        self.worker_id = worker_id
        self.capacity = capacity
        self.language = language
        self.dispatcher = ToolDispatcher(adapter, worker_id=worker_id, host=host,
                                         max_concurrency=capacity)
        self._on_heartbeat = on_heartbeat

    # -- liveness and description ------------------------------------------------------------
    def ping(self, request: pb.PingRequest) -> pb.PingResponse:
        return pb.PingResponse(message=request.message or "pong", worker_id=self.worker_id,
                               pid=os.getpid(), timestamp=time.time())

    def heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        if self._on_heartbeat is not None:
            self._on_heartbeat()
        return pb.HeartbeatResponse(seq=request.seq, worker_id=self.worker_id,
                                    in_flight=self.dispatcher.in_flight, rss_bytes=rss_bytes(),
                                    timestamp=time.time(),
                                    running=self.dispatcher.running_ids())

    def describe(self) -> pb.DescribeResponse:
        tools = []
        for t in self.dispatcher.tools.values():
            params = [pb.ParameterSpec(name=p.name, type=p.type_name, required=p.required,
                                       default_json=b"" if p.required
                                       else serialization.dumps(p.default),
                                       description=p.description) for p in t.params]
            tools.append(pb.ToolSpec(name=t.name, description=t.description, parameters=params,
                                     streaming=t.streaming))
        return pb.DescribeResponse(
            adapter=self.adapter.adapter_name(), version=self.adapter.version,
            language=self.language, capacity=self.capacity, tools=tools,
            worker_id=self.worker_id, pid=os.getpid(),
            runtime_version=".".join(map(str, sys.version_info[:3])))

    # -- tools and sessions --------------------------------------------------------------------
    async def execute(self, request: pb.ExecuteRequest) -> pb.ExecuteResponse:
        return await self.dispatcher.execute(request)

    def stream(self, request: pb.ExecuteRequest) -> AsyncGenerator[pb.ToolChunk, None]:
        """The chunks of one streamed call; close it (``aclosing``) when leaving early."""
        return self.dispatcher.stream(request)

    async def init_session(self, request: pb.InitSessionRequest) -> pb.InitSessionResponse:
        metadata = serialization.loads(request.metadata_json)
        return pb.InitSessionResponse(
            created=await self.dispatcher.init_session(request.session_id, metadata))

    async def end_session(self, request: pb.EndSessionRequest) -> pb.EndSessionResponse:
        return pb.EndSessionResponse(existed=await self.dispatcher.end_session(request.session_id))

    # -- telemetry -----------------------------------------------------------------------------
    def configure_telemetry(self, control: pb.TelemetryControl) -> None:
        """Apply the host's settings and acknowledge them with a ``telemetry.configured``
        event, past any filter, so the host knows from which event on they apply."""
        telemetry.buffer.configure(control.enabled, control.sampling_rate, control.allow,
                                   control.deny)
        telemetry.buffer.put("telemetry.configured", {"sampling_rate": control.sampling_rate}, {
            "enabled": control.enabled, "allow": list(control.allow),
            "deny": list(control.deny)}, force=True)

    def telemetry_messages(self) -> list[pb.TelemetryEvent]:
        """Everything queued so far, as messages (the first carries the dropped count)."""
        events, dropped = telemetry.buffer.drain()
        out = []
        for name, measurements, metadata, ts, corr in events:
            out.append(pb.TelemetryEvent(
                event=name.split("."), measurements_json=serialization.dumps(measurements),
                metadata_json=serialization.dumps(metadata), timestamp=ts,
                correlation_id=corr, worker_id=self.worker_id, dropped=dropped))
            dropped = 0
        return out

    async def telemetry_batches(self) -> AsyncGenerator[list[pb.TelemetryEvent], None]:
        """The worker's events, batch by batch as they are emitted, until closed. One reader
        at a time: the process has one event queue."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def waker() -> None:   # from any thread that emits
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass   # the loop has finished: the worker is exiting

        telemetry.buffer.waker = waker
        try:
            while True:
                wake.clear()
                batch = self.telemetry_messages()
                if batch:
                    yield batch
                if not telemetry.buffer.events:
                    await wake.wait()
        finally:
            if telemetry.buffer.waker is waker:
                telemetry.buffer.waker = None

    def close(self) -> None:
        self.dispatcher.close()


def rss_bytes() -> int:
    """This process's resident memory (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
