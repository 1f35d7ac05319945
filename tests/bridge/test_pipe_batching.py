"""The worker sends the stream chunks that are ready together, in one frame, within the host's
credit (a real worker, driven by raw frames)."""

import pytest

from snakepit_bridge import read_ahead, serialization
from snakepit_bridge.pipe_server import BATCH_BYTES
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import pipe_worker, recv, recv_chunks, send


@pytest.fixture
def host():
    with pipe_worker("bridge_adapters:StreamAdapter", "--max-concurrency", "2") as (_, host):
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


@pytest.mark.parametrize("tool", ["counted", "counted_sync"])
def test_ready_chunks_share_frames_in_order_with_their_metadata(host, tool):
    # a sync generator is read ahead on its thread, so its chunks are ready in batches too
    start(host, 1, tool, {"n": 300, "meta": True}, credit=1000)
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


@pytest.mark.parametrize("tool", ["one_then_wait", "one_then_wait_sync"])
def test_a_lone_chunk_leaves_at_once(host, tool):
    start(host, 1, tool, {"seconds": 60}, credit=10)
    first = recv_chunks(host, 1, timeout=10)   # long before the tool's next chunk
    assert [serialization.decode(c.data_json) for c in first] == ["first"]
    send(host, pb.Frame(id=1, cancel=pb.Cancel()))


@pytest.mark.parametrize("tool", ["counted", "counted_sync"])
def test_credit_counts_chunks_and_holds_the_producer_back(host, tool):
    start(host, 1, tool, {"n": 50}, credit=5)
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


def test_a_sync_generator_runs_ahead_of_its_credit_by_a_bounded_amount(host):
    start(host, 1, "counted_sync", {"n": 100_000}, credit=5)
    got = []
    while len(got) < 5:
        got += recv_chunks(host, 1)
    # the stream holds one slot, a second request takes the other
    raw, _ = serialization.encode({})
    send(host, pb.Frame(id=2, execute=pb.ExecuteRequest(tool="produced_count", args_json=raw)))
    reply = recv(host)
    assert reply.id == 2, reply
    produced = serialization.decode(reply.result.result_json)
    # at most two read-ahead steps (one being sent, the next one) beyond what was pulled
    assert 5 <= produced <= 6 + 2 * read_ahead.MAX_ITEMS, produced
    send(host, pb.Frame(id=1, cancel=pb.Cancel()))


def test_a_sync_generator_is_not_advanced_past_the_chunk_it_marked_final(host, tmp_path):
    marker = tmp_path / "advanced"
    start(host, 1, "final_then_more", {"marker": str(marker)}, credit=10)
    chunks, _ = read_stream(host, 1)
    assert [(serialization.decode(c.data_json), c.is_final) for c in chunks] == [
        (1, False), (2, True)]
    send(host, pb.Frame(id=2, ping=pb.PingRequest(message="after")))
    assert recv(host).pong.message == "after"
    assert not marker.exists()


def test_a_sync_generator_failing_mid_stream_ends_it_with_its_error(host):
    start(host, 1, "fails_after", {"n": 3}, credit=10)
    chunks, _ = read_stream(host, 1)
    assert [serialization.decode(c.data_json) for c in chunks[:3]] == [0, 1, 2]
    assert chunks[-1].is_final and chunks[-1].error.type == "ValueError"
    assert "failed after 3" in chunks[-1].error.message
