"""Both carriers serve the same worker core: the same request gets the same answer over gRPC
and over the pipe (one real worker process per carrier)."""

import contextlib
import itertools

import pytest

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import MD, pipe_worker, recv, send, worker

# RPC -> (request frame kind, reply frame kind) on the pipe
PIPE_KINDS = {"Ping": ("ping", "pong"), "Heartbeat": ("heartbeat", "heartbeat_reply"),
              "Describe": ("describe", "description"), "Execute": ("execute", "result"),
              "InitSession": ("init_session", "session_initialized"),
              "EndSession": ("end_session", "session_ended")}


@contextlib.contextmanager
def asker(carrier, adapter):
    """Yields ``ask(rpc, request) -> response`` over one worker on ``carrier``."""
    if carrier == "grpc":
        with worker(adapter) as (proc, _, stub):
            yield proc, lambda rpc, request: getattr(stub, rpc)(request, metadata=MD, timeout=10)
        return
    ids = itertools.count(1)
    with pipe_worker(adapter) as (proc, host):
        def ask(rpc, request):
            kind, reply = PIPE_KINDS[rpc]
            fid = next(ids)
            send(host, pb.Frame(id=fid, **{kind: request}))
            frame = recv(host)
            assert frame.id == fid and frame.WhichOneof("body") == reply, frame
            return getattr(frame, reply)
        yield proc, ask


def answers(carrier):
    with asker(carrier, "bridge_adapters:SessionAdapter") as (proc, ask):
        pong = ask("Ping", pb.PingRequest(message="hi"))
        assert (pong.message, pong.worker_id, pong.pid) == ("hi", "test-1", proc.pid)
        beat = ask("Heartbeat", pb.HeartbeatRequest(seq=41))
        assert (beat.seq, beat.worker_id, beat.in_flight) == (41, "test-1", 0)
        assert beat.rss_bytes > 0
        desc = ask("Describe", pb.DescribeRequest())
        assert desc.pid == proc.pid
        started = ask("InitSession", pb.InitSessionRequest(
            session_id="s-1", metadata_json=serialization.dumps({"user": "ada", "n": 1})))
        again = ask("InitSession", pb.InitSessionRequest(session_id="s-1"))
        seen = ask("Execute", pb.ExecuteRequest(
            tool="session_metadata", args_json=serialization.dumps({"session_id": "s-1"})))
        ended = ask("EndSession", pb.EndSessionRequest(session_id="s-1"))
        return {
            "describe": (desc.adapter, desc.version, desc.language, desc.capacity,
                         desc.worker_id, [t.SerializeToString() for t in desc.tools]),
            "sessions": (started.created, again.created, ended.existed),
            "metadata": serialization.decode(seen.result_json) if seen.success else seen.error,
        }


@pytest.mark.parametrize("carrier", ["grpc", "pipe"])
def test_a_carrier_passes_requests_to_the_core_and_its_answers_back(carrier):
    got = answers(carrier)
    assert got["sessions"] == (True, False, True)
    # the host's session metadata reaches the adapter's on_session_start on either carrier
    assert got["metadata"] == {"user": "ada", "n": 1}
    assert got["describe"][:5] == ("SessionAdapter", "0.1.0", "python", 1, "test-1")


def test_both_carriers_describe_the_same_tools():
    assert answers("grpc")["describe"] == answers("pipe")["describe"]
