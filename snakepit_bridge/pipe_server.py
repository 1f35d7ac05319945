"""The worker's pipe transport: Frames (bridge.proto) over the socketpair fd the host gave it.

The same ToolDispatcher and WorkerServicer methods as the gRPC server; only the carriage
differs: a 4-byte little-endian length, then a serialized Frame. Requests run as tasks keyed by
frame id (Cancel cancels the task); stream chunks are sent within the credit the host grants.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from snakepit_bridge.proto import bridge_pb2 as pb

log = logging.getLogger("snakepit_bridge.pipe")

HEADER = struct.Struct("<I")
MAX_FRAME = 256 * 1024 * 1024


class PipeServer:
    def __init__(self, fd: int, servicer: Any, dispatcher: Any) -> None:
        self.sock = socket.socket(fileno=fd)
        self.servicer, self.dispatcher = servicer, dispatcher
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.credits: dict[int, list[Any]] = {}   # id -> [available, asyncio.Event]
        self.writer: asyncio.StreamWriter | None = None

    def send(self, frame: pb.Frame) -> None:
        data = frame.SerializeToString()
        assert self.writer is not None
        self.writer.write(HEADER.pack(len(data)) + data)

    async def serve(self) -> None:
        reader, self.writer = await asyncio.open_connection(sock=self.sock,
                                                            limit=MAX_FRAME + 16)
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                if size > MAX_FRAME:
                    log.error("frame of %d bytes exceeds the %d limit: closing", size, MAX_FRAME)
                    return
                frame = pb.Frame.FromString(await reader.readexactly(size))
                self.handle(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            return   # the host closed its end: it is gone
        finally:
            for task in self.tasks.values():
                task.cancel()

    def handle(self, frame: pb.Frame) -> None:
        kind = frame.WhichOneof("body")
        fid = frame.id
        s = self.servicer
        if kind == "heartbeat":
            self.send(pb.Frame(id=fid, heartbeat_reply=s._heartbeat(frame.heartbeat)))
        elif kind == "ping":
            self.send(pb.Frame(id=fid, pong=s._ping(frame.ping)))
        elif kind == "describe":
            self.send(pb.Frame(id=fid, description=s._describe()))
        elif kind == "execute":
            self._spawn(fid, self._execute(fid, frame.execute))
        elif kind == "execute_stream":
            self.credits[fid] = [0, asyncio.Event()]
            self._spawn(fid, self._stream(fid, frame.execute_stream))
        elif kind == "credit":
            entry = self.credits.get(fid)
            if entry is not None:
                entry[0] += frame.credit.chunks
                entry[1].set()
        elif kind == "cancel":
            task = self.tasks.get(fid)
            if task is not None:
                task.cancel()
        elif kind == "init_session":
            self._spawn(fid, self._session(fid, frame.init_session, True))
        elif kind == "end_session":
            self._spawn(fid, self._session(fid, frame.end_session, False))
        else:
            self.send(pb.Frame(id=fid, error=pb.ErrorInfo(
                category="internal", type="BadFrame", message=f"unexpected frame {kind!r}")))

    def _spawn(self, fid: int, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks[fid] = task
        task.add_done_callback(lambda _: self.tasks.pop(fid, None))

    async def _execute(self, fid: int, request: pb.ExecuteRequest) -> None:
        self.send(pb.Frame(id=fid, result=await self.dispatcher.execute(request)))

    async def _stream(self, fid: int, request: pb.ExecuteRequest) -> None:
        credit = self.credits[fid]
        gen = self.dispatcher.stream(request)
        try:
            async for chunk in gen:
                while credit[0] <= 0:
                    credit[1].clear()
                    await credit[1].wait()
                credit[0] -= 1
                self.send(pb.Frame(id=fid, chunk=chunk))
                assert self.writer is not None
                await self.writer.drain()
        finally:
            await gen.aclose()
            self.credits.pop(fid, None)

    async def _session(self, fid: int, request: Any, init: bool) -> None:
        if init:
            created = await self.dispatcher.init_session(
                request.session_id, None)
            self.send(pb.Frame(id=fid, session_initialized=pb.InitSessionResponse(
                created=created)))
        else:
            existed = await self.dispatcher.end_session(request.session_id)
            self.send(pb.Frame(id=fid, session_ended=pb.EndSessionResponse(existed=existed)))
