"""The worker sends the stream chunks that are ready together, in one frame, within the host's
credit (a real worker, driven by raw frames)."""

import time

import pytest

from snakepit_bridge import serialization
from snakepit_bridge.pipe_server import BATCH_BYTES
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import chunks_of, pipe_worker, recv, recv_chunks, send


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


def test_a_sync_generator_is_not_pulled_past_its_credit(host):
    start(host, 1, "counted_sync", {"n": 100_000}, credit=5)
    got = []
    while len(got) < 5:
        got += recv_chunks(host, 1)
    # the stream holds one slot, a second request takes the other
    raw, _ = serialization.encode({})
    send(host, pb.Frame(id=2, execute=pb.ExecuteRequest(tool="produced_count", args_json=raw)))
    reply = recv(host)
    assert reply.id == 2, reply
    assert serialization.decode(reply.result.result_json) == 5
    send(host, pb.Frame(id=1, cancel=pb.Cancel()))


def test_plain_chunks_of_a_sync_generator_go_packed_in_order(host):
    start(host, 1, "counted_sync", {"n": 3000}, credit=5000)
    packed = []
    chunks = []
    while not chunks or not chunks[-1].is_final:
        frame = recv(host)
        assert frame.id == 1, frame
        if frame.WhichOneof("body") == "chunks" and frame.chunks.packed_json:
            packed.append(frame.chunks.first_chunk_id)
        chunks += chunks_of(frame)
    assert [c.chunk_id for c in chunks] == list(range(1, 3002))
    assert [serialization.decode(c.data_json) for c in chunks[:-1]] == list(range(3000))
    assert packed and len(packed) < 3000 // 2, packed   # several chunks a frame


def test_plain_and_marked_chunks_keep_their_order(host):
    start(host, 1, "mixed", {}, credit=100)
    chunks, _ = read_stream(host, 1)
    assert [(c.chunk_id, serialization.decode(c.data_json), dict(c.metadata), c.is_final)
            for c in chunks] == [
        (1, 0, {}, False), (2, 1, {}, False), (3, 2, {"m": "2"}, False), (4, 3, {}, False),
        (5, {"four": [4]}, {}, False), (6, None, {}, True)]


def test_an_unserializable_item_ends_the_stream_after_the_items_before_it(host):
    start(host, 1, "unserializable_third", {}, credit=100)
    chunks, _ = read_stream(host, 1)
    assert [serialization.decode(c.data_json) for c in chunks[:2]] == [1, 2]
    assert len(chunks) == 3 and chunks[2].is_final
    assert chunks[2].error.category == "unserializable_result", chunks[2]


def running(host, seq):
    send(host, pb.Frame(id=1000 + seq, heartbeat=pb.HeartbeatRequest(seq=seq)))
    reply = recv(host)
    while reply.WhichOneof("body") != "heartbeat_reply":   # chunks still on their way
        reply = recv(host)
    return list(reply.heartbeat_reply.running)


def wait_closed(host, marker):
    """Until the generator's finally has run and its request left the running list."""
    deadline = time.monotonic() + 30
    seq = 0
    while not (marker.exists() and marker.stat().st_size) or running(host, seq):
        assert time.monotonic() < deadline, "the generator was not closed"
        seq += 1
        time.sleep(0.02)   # polling a condition, with a deadline
    return marker.read_text()


def test_a_sync_generator_stream_times_out_with_a_final_timeout_chunk(host, tmp_path):
    marker = tmp_path / "closed"
    raw, _ = serialization.encode({"marker": str(marker), "pause": 0.01})
    send(host, pb.Frame(id=1, execute_stream=pb.ExecuteRequest(
        tool="forever", args_json=raw, timeout=1.0, request_id="r1")))
    send(host, pb.Frame(id=1, credit=pb.Credit(chunks=1_000_000)))
    chunks, _ = read_stream(host, 1)
    assert chunks[-1].is_final and chunks[-1].error.category == "timeout", chunks[-1]
    values = [serialization.decode(c.data_json) for c in chunks[:-1]]
    assert values == list(range(len(values))) and values   # chunks before it, in order
    assert wait_closed(host, marker).startswith("closed after")
    send(host, pb.Frame(id=2, ping=pb.PingRequest(message="after")))
    assert recv(host).pong.message == "after"


def test_a_cancelled_sync_generator_is_closed_and_sends_nothing_more(host, tmp_path):
    marker = tmp_path / "closed"
    raw, _ = serialization.encode({"marker": str(marker), "pause": 0})
    send(host, pb.Frame(id=1, execute_stream=pb.ExecuteRequest(
        tool="forever", args_json=raw, request_id="r1")))
    send(host, pb.Frame(id=1, credit=pb.Credit(chunks=10)))
    got = []
    while len(got) < 10:
        got += recv_chunks(host, 1)
    send(host, pb.Frame(id=1, cancel=pb.Cancel()))
    # closed at its 10th yield (of 9): not pulled past its credit
    assert wait_closed(host, marker) == "closed after 9"
    send(host, pb.Frame(id=2, ping=pb.PingRequest(message="after")))
    reply = recv(host)
    assert reply.id == 2 and reply.pong.message == "after", reply


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
