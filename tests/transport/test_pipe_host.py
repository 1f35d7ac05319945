"""The host's side of the pipe transport against a scripted peer on a socketpair (no process)."""

import socket
import struct

import pytest
import trio

from snakepit.errors import WorkerCrashed
from snakepit.transport.pipe import PipeTransport
from snakepit_bridge.proto import bridge_pb2 as pb

HEADER = struct.Struct("<I")


class Peer:
    """The worker's end, spoken by the test."""

    def __init__(self, sock):
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self.buf = b""

    async def send(self, frame=None, raw=None):
        data = frame.SerializeToString() if frame is not None else raw
        await self.stream.send_all(HEADER.pack(len(data)) + data)

    async def recv(self):
        while True:
            if len(self.buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(self.buf)
                if len(self.buf) >= HEADER.size + size:
                    body = self.buf[HEADER.size:HEADER.size + size]
                    self.buf = self.buf[HEADER.size + size:]
                    return pb.Frame.FromString(body)
            data = await self.stream.receive_some(65536)
            assert data, "the host closed the pipe"
            self.buf += data


class Handler:
    async def call_host_tool(self, request):
        return pb.ExecuteResponse(success=True, result_json=b'"' + request.tool.encode() + b'"')


@pytest.fixture
async def pair(nursery):
    host_sock, peer_sock = socket.socketpair()
    transport = PipeTransport(host_sock, "w-1", Handler())
    await transport.start(nursery)
    yield transport, Peer(peer_sock)
    await transport.aclose()


async def test_reply_routes_by_id(pair):
    transport, peer = pair
    async with trio.open_nursery() as n:
        n.start_soon(transport.ping)
        req = await peer.recv()
        assert req.WhichOneof("body") == "ping"
        await peer.send(pb.Frame(id=req.id, pong=pb.PingResponse(message="x", pid=7)))


@pytest.mark.parametrize("raw", [b"\x07garbage", b"\xff\xff\xff\xff\xff"])
async def test_malformed_frame_fails_pending_calls_as_crashed(pair, raw):
    transport, peer = pair
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            async def call():
                with pytest.raises(WorkerCrashed, match="protocol error"):
                    await transport.ping()
            n.start_soon(call)
            await peer.recv()
            await peer.send(raw=raw)
    with pytest.raises(WorkerCrashed):   # and the transport stays closed
        await transport.ping()


async def test_oversized_frame_fails_the_transport(pair):
    transport, peer = pair
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            async def call():
                with pytest.raises(WorkerCrashed, match="frame"):
                    await transport.describe()
            n.start_soon(call)
            await peer.recv()
            await peer.stream.send_all(HEADER.pack(0xFFFFFFF0))


async def test_worker_call_into_the_host_is_answered_under_its_id(pair):
    transport, peer = pair
    with trio.fail_after(10):
        await peer.send(pb.Frame(id=41, call_host_tool=pb.CallHostToolRequest(tool="tok")))
        reply = await peer.recv()
    assert reply.id == 41 and reply.result.success and reply.result.result_json == b'"tok"'


async def test_worker_call_without_a_handler_method_is_an_error_reply(pair):
    transport, peer = pair
    with trio.fail_after(10):
        await peer.send(pb.Frame(id=5, get_variable=pb.GetVariableRequest(name="x")))
        reply = await peer.recv()
    assert reply.id == 5 and reply.error.category == "host"


async def test_telemetry_events_flow_after_a_control(pair):
    transport, peer = pair
    with trio.fail_after(10):
        async with transport.telemetry(pb.TelemetryControl(enabled=True,
                                                           sampling_rate=1.0)) as stream:
            control = await peer.recv()
            assert control.WhichOneof("body") == "telemetry_control" and control.id == 0
            await peer.send(pb.Frame(telemetry_event=pb.TelemetryEvent(event=["a", "b"])))
            event = await stream.events.receive()
            assert list(event.event) == ["a", "b"]


@pytest.fixture
async def shm_pair(nursery, tmp_path):
    """A transport whose worker (pid 4242) may name only ``<prefix>-w4242-*`` segments, and
    a segment of somebody else's that a buggy peer names."""
    import os
    import secrets

    from snakepit_bridge import shm
    if not shm.available():
        pytest.skip("no /dev/shm")
    prefix = f"snakepit-t{secrets.token_hex(4)}"
    foreign = f"{prefix}-w1-1"   # another worker's
    path = os.path.join(shm.SHM_DIR, foreign)
    with open(path, "wb") as f:
        f.write(b"x" * 16)
    host_sock, peer_sock = socket.socketpair()
    transport = PipeTransport(host_sock, "w-1", Handler(), shm_prefix=prefix, worker_pid=4242)
    await transport.start(nursery)
    try:
        yield transport, Peer(peer_sock), foreign, path
    finally:
        await transport.aclose()
        shm.sweep(prefix)


def _naming(segment):
    return {"b": pb.Blob(shm_name=segment, shm_size=16, dtype="bytes")}


async def test_a_reply_naming_a_foreign_segment_is_refused_and_left_alone(shm_pair):
    import os

    from snakepit.errors import SnakepitError
    transport, peer, foreign, path = shm_pair
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            async def call():
                with pytest.raises(SnakepitError, match="may not name"):
                    await transport.execute(pb.ExecuteRequest(tool="x"), timeout=5)
            n.start_soon(call)
            req = await peer.recv()
            await peer.send(pb.Frame(id=req.id, result=pb.ExecuteResponse(
                success=True, result_json=b"1", blobs=_naming(foreign))))
        # a late reply nobody waits for: discarded, but only the peer's own segments
        await peer.send(pb.Frame(id=999, result=pb.ExecuteResponse(
            success=True, result_json=b"1", blobs=_naming(foreign))))
        async with trio.open_nursery() as n:   # and the pipe still works
            n.start_soon(transport.ping)
            req = await peer.recv()
            await peer.send(pb.Frame(id=req.id, pong=pb.PingResponse(message="x", pid=7)))
    assert os.path.exists(path)


async def test_a_host_call_naming_a_foreign_segment_gets_an_error(shm_pair):
    import os
    transport, peer, foreign, path = shm_pair
    with trio.fail_after(10):
        await peer.send(pb.Frame(id=7, call_host_tool=pb.CallHostToolRequest(
            tool="tok", blobs=_naming(foreign))))
        reply = await peer.recv()
    assert reply.id == 7 and reply.WhichOneof("body") == "error"
    assert "may not name" in reply.error.message
    assert os.path.exists(path)
