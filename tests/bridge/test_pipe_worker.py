"""The worker's side of the pipe transport, driven by raw frames over a real socketpair."""

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from snakepit_bridge import shm
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import HEADER, pipe_worker as spawn_pipe_worker, recv, recv_chunks, send


@pytest.fixture
def pipe_worker():
    with spawn_pipe_worker() as (proc, host):
        yield proc, host


def wait_exit(proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the worker did not exit"
        time.sleep(0.02)
    return proc.returncode


def test_ping_then_an_unexpected_frame_gets_a_named_error(pipe_worker):
    proc, host = pipe_worker
    send(host, pb.Frame(id=1, ping=pb.PingRequest(message="hi")))
    reply = recv(host)
    assert reply.id == 1 and reply.pong.message == "hi" and reply.pong.pid == proc.pid
    send(host, pb.Frame(id=2, pong=pb.PingResponse()))   # a reply kind, sent as a request
    reply = recv(host)
    assert reply.id == 2 and reply.error.type == "BadFrame" and "pong" in reply.error.message


@pytest.mark.parametrize("raw", [b"\x07garbage", b"\xff\xff\xff\xff\xff"])
def test_malformed_frame_stops_the_worker_as_host_lost(pipe_worker, raw):
    proc, host = pipe_worker
    send(host, raw=raw)
    assert wait_exit(proc) == 4
    assert b"malformed frame" in proc.stderr.read()


def test_oversized_frame_header_stops_the_worker(pipe_worker):
    proc, host = pipe_worker
    host.sendall(HEADER.pack(0xFFFFFFFF))
    assert wait_exit(proc) == 4
    assert b"exceeds" in proc.stderr.read()


def test_host_closing_its_end_stops_the_worker(pipe_worker):
    proc, host = pipe_worker
    host.close()
    assert wait_exit(proc) == 4


# -- a non-conforming host: every request answered, nothing foreign touched -----------------
def execute(fid, tool, args_json=b"{}", blobs=None, stream=False, **kw):
    request = pb.ExecuteRequest(tool=tool, args_json=args_json, blobs=blobs or {}, **kw)
    return pb.Frame(id=fid, execute_stream=request) if stream else \
        pb.Frame(id=fid, execute=request)


def still_serving(host, fid=99):
    send(host, pb.Frame(id=fid, ping=pb.PingRequest(message="still")))
    reply = recv(host)
    assert reply.id == fid and reply.pong.message == "still"


@pytest.mark.parametrize("blob", [
    pb.Blob(data=b"\x00" * 8, dtype="zz9", shape=[1]),     # numpy: TypeError
    pb.Blob(data=b"\x00" * 4, dtype="<f8", shape=[3]),     # bytes do not fit: ValueError
])
def test_an_undecodable_blob_gets_an_error_reply(pipe_worker, blob):
    _, host = pipe_worker
    send(host, execute(7, "echo", b'{"x": {"__blob__": "b0"}}', {"b0": blob}))
    reply = recv(host)
    assert reply.id == 7 and not reply.result.success
    err = reply.result.error
    assert (err.category, err.type) == ("invalid_arguments", "InvalidBlob"), err
    assert "echo" in err.message
    still_serving(host)


def test_a_request_that_fails_in_the_worker_is_answered_with_an_error_frame(pipe_worker):
    _, host = pipe_worker
    send(host, pb.Frame(id=8, init_session=pb.InitSessionRequest(
        session_id="s", metadata_json=b"{not json")))
    reply = recv(host)
    assert reply.id == 8 and reply.WhichOneof("body") == "error"
    assert reply.error.category == "internal" and "request 8" in reply.error.message
    still_serving(host)


def test_a_duplicate_stream_id_is_refused_and_the_first_stream_goes_on(pipe_worker):
    _, host = pipe_worker
    # no credit yet: the first stream stays in flight, waiting for the host
    send(host, execute(5, "stream_data", b'{"count": 3}', stream=True))
    send(host, execute(5, "ping", stream=True))
    reply = recv(host)
    assert reply.id == 5 and reply.error.type == "DuplicateId", reply
    assert "5" in reply.error.message
    send(host, execute(5, "add", b'{"a": 1, "b": 2}'))   # a unary call on that id too
    assert recv(host).error.type == "DuplicateId"
    send(host, pb.Frame(id=5, credit=pb.Credit(chunks=10)))
    chunks = []
    while not chunks or not chunks[-1].is_final:
        chunks += recv_chunks(host, 5)
    assert [c.data_json for c in chunks[:3]] == [b'{"index":0,"value":0}',
                                                   b'{"index":1,"value":1}',
                                                   b'{"index":2,"value":4}']
    still_serving(host)


@pytest.fixture
def shm_run(tmp_path):
    """A run prefix for the worker, and segments to name in frames (removed afterwards)."""
    run = f"snakepit-t{os.getpid()}x{uuid.uuid4().hex[:8]}"
    made = []

    def segment(name, data=b"\x01\x02\x03\x04"):
        path = Path(shm.SHM_DIR) / name
        path.write_bytes(data)
        made.append(path)
        return path
    yield run, segment
    for path in made:
        path.unlink(missing_ok=True)


@pytest.fixture
def shm_pipe_worker(shm_run):
    run, _ = shm_run
    with spawn_pipe_worker(env={shm.PREFIX_ENV: run}) as (proc, host):
        yield proc, host


@pytest.mark.skipif(not shm.available(), reason="needs a writable /dev/shm")
def test_a_frame_may_name_only_the_hosts_own_segments(shm_run, shm_pipe_worker):
    run, segment = shm_run
    proc, host = shm_pipe_worker
    other_run = segment(f"snakepit-other{uuid.uuid4().hex[:8]}-h1.1-1")
    worker_own = segment(f"{run}-w{proc.pid}-1")
    hosts = segment(f"{run}-h1.1-2")
    for fid, foreign in ((11, other_run), (12, worker_own)):
        blobs = {"b0": pb.Blob(shm_name=foreign.name, shm_size=4),
                 "b1": pb.Blob(shm_name=hosts.name, shm_size=4)}
        send(host, execute(fid, "echo", b'{"x": {"__blob__": "b0"}, "y": {"__blob__": "b1"}}',
                           blobs))
        reply = recv(host)
        assert reply.id == fid and reply.WhichOneof("body") == "error", reply
        assert reply.error.type == "ForeignSegment" and foreign.name in reply.error.message
        assert foreign.exists(), "a segment the host may not name was touched"
        assert not hosts.exists(), "the host's own segment of a refused frame is left over"
        hosts = segment(f"{run}-h1.1-{fid}")
    # the host's own segment is read (and unlinked) as always
    send(host, execute(13, "echo", b'{"x": {"__blob__": "b0"}}',
                       {"b0": pb.Blob(shm_name=hosts.name, shm_size=4)}))
    reply = recv(host)
    assert reply.id == 13 and reply.result.success, reply
    assert reply.result.blobs["b0"].data == b"\x01\x02\x03\x04"
    assert not hosts.exists()


@pytest.mark.parametrize("tools", [[], ["add", "echo"]])
def test_a_batch_of_no_tool_or_of_several_is_refused_with_bad_batch(pipe_worker, tools):
    proc, host = pipe_worker
    batch = pb.ExecuteBatch(request_id="b", requests=[
        pb.ExecuteRequest(request_id=f"b-{i}", tool=tool, args_json=b'{"a": 1, "b": 2}')
        for i, tool in enumerate(tools)])
    send(host, pb.Frame(id=1, execute_batch=batch))
    reply = recv(host)
    assert reply.id == 1 and reply.error.type == "BadBatch", reply
    send(host, pb.Frame(id=2, ping=pb.PingRequest(message="after")))
    reply = recv(host)   # and the worker serves on
    assert reply.id == 2 and reply.pong.message == "after", reply


def test_a_long_tool_on_a_one_at_a_time_worker_hands_the_reading_over(pipe_worker):
    # A worker that serves one call at a time runs a sync tool on its reading thread; one
    # that runs long gives the reading up, so pings, heartbeats and its cancel still arrive.
    _, host = pipe_worker
    send(host, execute(1, "sleep", b'{"seconds": 60}', request_id="long"))
    send(host, pb.Frame(id=2, ping=pb.PingRequest(message="during")))
    reply = recv(host, timeout=30)   # long before the tool's 60 s
    assert reply.id == 2 and reply.pong.message == "during", reply
    send(host, pb.Frame(id=3, heartbeat=pb.HeartbeatRequest(seq=1)))
    reply = recv(host, timeout=30)
    assert reply.id == 3 and list(reply.heartbeat_reply.running) == ["long"], reply
    send(host, pb.Frame(id=1, cancel=pb.Cancel()))   # the tool sees it and returns
    deadline = time.monotonic() + 30
    running = ["long"]
    while running:
        assert time.monotonic() < deadline, "the cancelled tool did not end"
        send(host, pb.Frame(id=4, heartbeat=pb.HeartbeatRequest(seq=2)))
        reply = recv(host, timeout=30)
        assert reply.id == 4, reply   # a cancelled request gets no answer
        running = list(reply.heartbeat_reply.running)
    still_serving(host)
    send(host, execute(5, "add", b'{"a": 1, "b": 2}'))
    reply = recv(host)
    assert reply.id == 5 and reply.result.result_json == b"3", reply


def packed(fid, tool, items, timeout=0.0):
    return pb.Frame(id=fid, execute_batch=pb.ExecuteBatch(
        request_id=f"p{fid}", template=pb.ExecuteRequest(tool=tool, timeout=timeout),
        packed_args_json=json.dumps(items).encode()))


@pytest.mark.parametrize("tool", ["add", "add_async"])
def test_a_packed_batch_is_answered_packed_when_every_item_succeeds(tool):
    # a sync tool's items run on a tool thread, an async tool's on the loop (expanded there)
    with spawn_pipe_worker("bridge_adapters:PackedTools") as (_, host):
        send(host, packed(1, tool, [{"a": i, "b": 1} for i in range(5)]))
        reply = recv(host)
        assert reply.id == 1 and not reply.results.responses, reply
        assert json.loads(reply.results.packed_json) == [1, 2, 3, 4, 5]
        # an item that fails: a response per item, its error at its place
        send(host, packed(2, tool, [{"a": 1, "b": 1}, {"a": "x", "b": 1}, {"a": 2, "b": 2}]))
        reply = recv(host)
        assert reply.id == 2 and not reply.results.packed_json, reply
        assert [r.success for r in reply.results.responses] == [True, False, True]
        assert reply.results.responses[1].error.category in ("invalid_arguments", "tool")
        assert [reply.results.responses[i].result_json for i in (0, 2)] == [b"2", b"4"]


def test_a_packed_batch_whose_item_times_out_ends_there(pipe_worker):
    _, host = pipe_worker
    send(host, packed(1, "sleep", [{"seconds": 0.01}, {"seconds": 30}, {"seconds": 0.01}],
                      timeout=0.3))
    reply = recv(host, timeout=30)
    assert reply.id == 1 and not reply.results.packed_json, reply
    assert [r.success for r in reply.results.responses] == [True, False]
    assert json.loads(reply.results.responses[0].result_json)["cancelled"] is False
    assert reply.results.responses[1].error.category == "timeout"


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{}", b"[]", b"[{"])
def test_a_packed_batch_that_is_not_an_array_of_objects_is_refused(pipe_worker, raw):
    _, host = pipe_worker
    send(host, pb.Frame(id=1, execute_batch=pb.ExecuteBatch(
        request_id="p", template=pb.ExecuteRequest(tool="add"), packed_args_json=raw)))
    reply = recv(host)
    assert reply.id == 1 and reply.error.type == "BadBatch", reply
    still_serving(host)
