"""The host's side of the pipe transport against a scripted peer on a socketpair (no process)."""

import contextlib
import os
import socket
import struct
import uuid
from pathlib import Path

import pytest
import trio
import trio.testing

from snakepit.errors import DeadlinePassed, TransportError, WorkerCrashed
from snakepit.transport import pipe
from snakepit.transport.pipe import PipeTransport
from snakepit_bridge import shm
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


async def test_a_call_past_its_deadline_cancels_and_its_late_reply_is_dropped(pair):
    transport, peer = pair
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            async def call():
                with pytest.raises(DeadlinePassed):
                    await transport.execute(pb.ExecuteRequest(tool="x"),
                                            deadline=trio.current_time() + 0.2)
            n.start_soon(call)
            req = await peer.recv()
            cancel = await peer.recv()   # sent at the deadline
            assert (cancel.id, cancel.WhichOneof("body")) == (req.id, "cancel")
        await peer.send(pb.Frame(id=req.id, result=pb.ExecuteResponse(success=True)))
        async with trio.open_nursery() as n:   # the late reply went nowhere; calls go on
            n.start_soon(transport.ping)
            ping = await peer.recv()
            await peer.send(pb.Frame(id=ping.id, pong=pb.PingResponse(message="x")))
        assert not transport._slots


@pytest.mark.parametrize("raw", [
    b"\x07garbage", b"\xff\xff\xff\xff\xff",
    # Regression (found by the pipe fuzz): it parses, but field 34 is no body the host knows;
    # it used to answer the ping (frame 1) with an empty PingResponse.
    pb.Frame(id=1).SerializeToString() + b"\x92\x02\x00",
])
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


async def test_a_reply_of_the_wrong_kind_is_a_transport_error(pair):
    transport, peer = pair
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            async def call():
                with pytest.raises(TransportError, match="'pong' frame, not 'result'"):
                    await transport.execute(pb.ExecuteRequest(tool="add"))
            n.start_soon(call)
            req = await peer.recv()
            await peer.send(pb.Frame(id=req.id, pong=pb.PingResponse(message="x")))


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


# -- streams: a `chunks` frame carries several chunks of one stream ------------------------------
def batch(fid, first, last, final=False, **kw):
    chunks = [pb.ToolChunk(chunk_id=i, data_json=str(i).encode(), metadata={"i": str(i)}, **kw)
              for i in range(first, last + 1)]
    chunks[-1].is_final = final
    return pb.Frame(id=fid, chunks=pb.ToolChunks(chunks=chunks))


async def open_stream(transport, peer, stack):
    chunks = await stack.enter_async_context(transport.stream(pb.ExecuteRequest(tool="s")))
    request, credit = await peer.recv(), await peer.recv()
    assert request.WhichOneof("body") == "execute_stream"
    assert credit.id == request.id and credit.credit.chunks == pipe.WINDOW
    return chunks, request.id


async def test_a_batch_is_handed_out_in_order_without_a_checkpoint_per_chunk(pair):
    transport, peer = pair
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as stack:
            chunks, fid = await open_stream(transport, peer, stack)
            await peer.send(batch(fid, 1, 3))
            await peer.send(pb.Frame(id=fid, chunk=pb.ToolChunk(chunk_id=4, data_json=b"4")))
            await peer.send(batch(fid, 5, 6, final=True))
            got = [await chunks.__anext__()]
            with trio.CancelScope() as scope:
                scope.cancel()   # any checkpoint would raise Cancelled here
                got += [await chunks.__anext__(), await chunks.__anext__()]
            got += [c async for c in chunks]
    assert [(c.chunk_id, c.data_json, c.is_final) for c in got] == [
        (i, str(i).encode(), i == 6) for i in range(1, 7)]
    assert [dict(c.metadata) for c in got if c.chunk_id != 4] == [
        {"i": str(i)} for i in (1, 2, 3, 5, 6)]


def big_batch(fid, first, last):
    """Chunks of 16 KiB: the window stays at WINDOW chunks (1 MiB)."""
    assert pipe.WINDOW * 16 * 1024 == pipe.WINDOW_BYTES
    return pb.Frame(id=fid, chunks=pb.ToolChunks(chunks=[
        pb.ToolChunk(chunk_id=i, data_json=b'"' + b"x" * (16 * 1024 - 8) + b'"')
        for i in range(first, last + 1)]))


async def test_credit_counts_chunks_not_frames(pair):
    transport, peer = pair
    half = pipe.WINDOW // 2
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as stack:
            chunks, fid = await open_stream(transport, peer, stack)
            await peer.send(big_batch(fid, 1, half))   # one frame, half the window
            for _ in range(half):
                await chunks.__anext__()
            refill = await peer.recv()
            assert refill.id == fid and refill.credit.chunks == half


async def test_the_window_grows_for_small_chunks_up_to_its_bound(pair):
    transport, peer = pair
    half = pipe.WINDOW // 2
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as stack:
            chunks, fid = await open_stream(transport, peer, stack)
            await peer.send(batch(fid, 1, half))   # chunks of a few bytes
            for _ in range(half):
                await chunks.__anext__()
            refill = await peer.recv()
            # what was taken, plus what brings the window up to MAX_WINDOW chunks
            assert refill.credit.chunks == half + pipe.MAX_WINDOW - pipe.WINDOW
            # big chunks now: the window shrinks back as they are taken, so no credit goes
            # out until the chunks in flight are down to WINDOW; then what is taken comes back
            rest = refill.credit.chunks
            for first in range(half + 1, half + rest + 1, 64):
                await peer.send(big_batch(fid, first, min(first + 63, half + rest)))
            for _ in range(rest):
                await chunks.__anext__()
            later = await peer.recv()
            assert later.id == fid and later.credit.chunks == half


async def test_a_packed_frame_is_its_chunks_decoded_in_order(pair):
    transport, peer = pair
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as stack:
            chunks, fid = await open_stream(transport, peer, stack)
            await peer.send(pb.Frame(id=fid, chunks=pb.ToolChunks(
                first_chunk_id=1, packed_json=b'[1, {"a": [2]}, "three"]')))
            await peer.send(pb.Frame(id=fid, chunk=pb.ToolChunk(chunk_id=4, is_final=True)))
            got = [await chunks.__anext__()]
            with trio.CancelScope() as scope:
                scope.cancel()   # any checkpoint would raise Cancelled here
                got += [await chunks.__anext__(), await chunks.__anext__()]
            got += [c async for c in chunks]
    assert [(c.chunk_id, getattr(c, "data", None), c.is_final) for c in got] == [
        (1, 1, False), (2, {"a": [2]}, False), (3, "three", False), (4, None, True)]


@pytest.mark.parametrize("packed", [b"[1,", b'{"a": 1}'])
async def test_a_packed_frame_that_is_not_a_json_array_fails_the_stream(pair, packed):
    transport, peer = pair
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as stack:
            chunks, fid = await open_stream(transport, peer, stack)
            await peer.send(pb.Frame(id=fid, chunks=pb.ToolChunks(first_chunk_id=1,
                                                                  packed_json=packed)))
            with pytest.raises(TransportError, match="packed chunks frame"):
                await chunks.__anext__()


@pytest.mark.skipif(not shm.available(), reason="needs a writable /dev/shm")
async def test_leaving_mid_batch_cancels_and_removes_the_unread_chunks_segments(nursery):
    prefix = f"snakepit-t{os.getpid()}x{uuid.uuid4().hex[:8]}"
    host_sock, peer_sock = socket.socketpair()
    # the worker (pid 1 here) may name its own segments: <prefix>-w1-*
    transport = PipeTransport(host_sock, "w-1", Handler(), shm_prefix=prefix, worker_pid=1)
    await transport.start(nursery)
    peer = Peer(peer_sock)
    names = [f"{prefix}-w1-{i}" for i in range(3)]
    for name in names:
        (Path(shm.SHM_DIR) / name).write_bytes(b"abcd")
    try:
        with trio.fail_after(10):
            async with contextlib.AsyncExitStack() as stack:
                chunks, fid = await open_stream(transport, peer, stack)
                frame = batch(fid, 1, 3)
                for chunk, name in zip(frame.chunks.chunks, names[:2]):
                    chunk.blobs["b0"].CopyFrom(pb.Blob(shm_name=name, shm_size=4))
                await peer.send(frame)
                later = batch(fid, 4, 4)
                later.chunks.chunks[0].blobs["b0"].CopyFrom(pb.Blob(shm_name=names[2],
                                                                    shm_size=4))
                await peer.send(later)
                await trio.testing.wait_all_tasks_blocked()
                first = await chunks.__anext__()
                assert first.chunk_id == 1
            cancel = await peer.recv()
            assert cancel.id == fid and cancel.WhichOneof("body") == "cancel"
        # chunk 1 was handed out (its reader owns its segment); 2 and 4 were not read
        assert [(Path(shm.SHM_DIR) / n).exists() for n in names] == [True, False, False]
    finally:
        await transport.aclose()
        for name in names:
            (Path(shm.SHM_DIR) / name).unlink(missing_ok=True)


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


async def test_chunks_with_blobs_in_shared_memory_count_their_size_for_the_window(shm_pair):
    # a blob in shared memory is only a name in the frame: the window must not grow as if
    # the chunks were small (1024 chunks of 16 MiB arrays would be 16 GiB in /dev/shm)
    transport, peer, _, _ = shm_pair
    prefix = transport._peer   # the names the worker may use
    half = pipe.WINDOW // 2
    with trio.fail_after(10):
        async with contextlib.AsyncExitStack() as stack:
            chunks, fid = await open_stream(transport, peer, stack)
            await peer.send(pb.Frame(id=fid, chunks=pb.ToolChunks(chunks=[
                pb.ToolChunk(chunk_id=i, data_json=b'{"__blob__": "a"}', blobs={"a": pb.Blob(
                    shm_name=f"{prefix}{i}", shm_size=16 * 1024, dtype="bytes")})
                for i in range(1, half + 1)])))
            for _ in range(half):
                await chunks.__anext__()
            refill = await peer.recv()
            assert refill.id == fid and refill.credit.chunks == half
