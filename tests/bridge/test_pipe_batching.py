"""The worker sends the stream chunks that are ready together, in one frame, within the host's
credit (a real worker, driven by raw frames)."""

import pytest

from snakepit_bridge import serialization
from snakepit_bridge.pipe_server import BATCH_BYTES
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import pipe_worker, recv, recv_chunks, send


@pytest.fixture
def host():
    with pipe_worker("bridge_adapters:StreamAdapter") as (_, host):
        yield host


def start(host, fid, tool, args, credit):
    raw, _ = serialization.encode(args)
    send(host, pb.Frame(id=fid, execute_stream=pb.ExecuteRequest(tool=tool, args_json=raw)))
    if credit:
        send(host, pb.Frame(id=fid, credit=pb.Credit(chunks=credit)))


def read_stream(host, fid):
    """(chunks, chunks per frame) until the final chunk."""
    chunks, sizes = [], []
    while not chunks or not chunks[-1].is_final:
        got = recv_chunks(host, fid)
        chunks += got
        sizes.append(len(got))
    return chunks, sizes


def test_ready_chunks_share_frames_in_order_with_their_metadata(host):
    start(host, 1, "counted", {"n": 300, "meta": True}, credit=1000)
    chunks, sizes = read_stream(host, 1)
    assert [c.chunk_id for c in chunks] == list(range(1, 302))
    assert [serialization.decode(c.data_json) for c in chunks[:-1]] == list(range(300))
    assert [dict(c.metadata) for c in chunks[:-1]] == [{"i": str(i)} for i in range(300)]
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    assert max(sizes) > 1 and len(sizes) < 300, sizes


def test_a_frame_holds_at_most_batch_bytes_of_chunks(host):
    start(host, 1, "counted", {"n": 10000, "meta": True}, credit=20000)   # ~200 kB
    frames = []
    while not frames or not frames[-1][-1].is_final:
        frames.append(recv_chunks(host, 1))
    assert len(frames) > 1
    assert all(sum(c.ByteSize() for c in f) <= BATCH_BYTES for f in frames if len(f) > 1)


def test_a_lone_chunk_leaves_at_once(host):
    start(host, 1, "one_then_wait", {"seconds": 60}, credit=10)
    first = recv_chunks(host, 1, timeout=10)   # long before the tool's next chunk
    assert [serialization.decode(c.data_json) for c in first] == ["first"]
    send(host, pb.Frame(id=1, cancel=pb.Cancel()))


def test_credit_counts_chunks_and_holds_the_producer_back(host):
    start(host, 1, "counted", {"n": 50}, credit=5)
    got = []
    while len(got) < 5:
        got += recv_chunks(host, 1)
    assert len(got) == 5
    # the worker answers a ping, and sends no chunk past its credit before it
    send(host, pb.Frame(id=2, ping=pb.PingRequest(message="p")))
    assert recv(host).WhichOneof("body") == "pong"
    send(host, pb.Frame(id=1, credit=pb.Credit(chunks=100)))
    rest, _ = read_stream(host, 1)
    assert [c.chunk_id for c in got + rest] == list(range(1, 52))
