"""Fuzzing the pipe framing on both sides (hypothesis; bounded in examples and time).

Host: a PipeTransport reads random and mutated frames from a scripted peer while a call waits
on it; whatever arrives, the call ends (answered, or WorkerCrashed / TransportError once the
peer closes) and nothing but that escapes. Worker: a real pipe worker is fed the same kind of
input; it never hangs — if every frame parses it still answers a ping, if one does not it ends
the connection with exit code 4, and when the host's end closes it exits with code 4.
"""

import os
import select
import socket
import struct
import subprocess
import sys
import time

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakepit.errors import TransportError, WorkerCrashed
from snakepit.transport.pipe import PipeTransport
from snakepit_bridge.proto import bridge_pb2 as pb

pytestmark = pytest.mark.chaos

HEADER = struct.Struct("<I")
PING_ID = 0x7777

# Frames each side may legitimately see from its peer (ids chosen to collide with live calls).
TO_HOST = [
    pb.Frame(id=1, pong=pb.PingResponse(message="x", pid=1)),
    pb.Frame(id=1, result=pb.ExecuteResponse(success=True, result_json=b"1")),
    pb.Frame(id=2, chunk=pb.ToolChunk(chunk_id=1, data_json=b"{}", is_final=True)),
    pb.Frame(id=0, telemetry_event=pb.TelemetryEvent(event=["a", "b"])),
    pb.Frame(id=3, call_host_tool=pb.CallHostToolRequest(tool="t", args_json=b"{}")),
    pb.Frame(id=1, error=pb.ErrorInfo(category="internal", message="no")),
    pb.Frame(id=1, result=pb.ExecuteResponse(success=True, result_json=b'{"__blob__": "b0"}',
                                             blobs={"b0": pb.Blob(data=b"x", dtype="<f8")})),
]
TO_WORKER = [
    pb.Frame(id=1, ping=pb.PingRequest(message="p")),
    pb.Frame(id=2, heartbeat=pb.HeartbeatRequest(seq=1)),
    pb.Frame(id=3, execute=pb.ExecuteRequest(tool="echo", args_json=b'{"x": 1}')),
    pb.Frame(id=4, execute=pb.ExecuteRequest(tool="add", args_json=b'{"a": 1}')),
    pb.Frame(id=5, cancel=pb.Cancel()),
    pb.Frame(id=6, credit=pb.Credit(chunks=3)),
    pb.Frame(id=7, end_session=pb.EndSessionRequest(session_id="s")),
    pb.Frame(id=8, result=pb.ExecuteResponse(success=True)),     # a reply nobody asked for
    pb.Frame(id=9, describe=pb.DescribeRequest()),
]


def _framed(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def _mutate(body: bytes, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(body)
    for pos, byte in edits:
        if data:
            data[pos % len(data)] = byte
    return bytes(data)


def pieces(valid):
    """One write: ``(bytes, framed)``; framed pieces keep the stream's framing intact."""
    bodies = st.sampled_from([f.SerializeToString() for f in valid])
    edits = st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), min_size=1,
                     max_size=6)
    return st.one_of(
        bodies.map(lambda b: (_framed(b), True)),
        st.tuples(bodies, edits).map(lambda t: (_framed(_mutate(*t)), True)),
        st.binary(max_size=64).map(lambda b: (_framed(b), True)),
        st.binary(min_size=1, max_size=64).map(lambda b: (b, False)),      # framing broken
        st.tuples(bodies, st.integers(1, 1 << 20)).map(                     # length lies
            lambda t: (HEADER.pack(len(t[0]) + t[1]) + t[0], False)),
    )


def _frame(piece: bytes):
    try:
        return pb.Frame.FromString(piece[HEADER.size:])
    except Exception:
        return None


def _first_break(chunks):
    """What the receiver must do, as far as it can be told: ``"malformed"`` when a frame that
    does not parse arrives while the framing is intact, ``"broken"`` when raw bytes or a
    lying length make the rest unpredictable, else None. Also the frames before that point."""
    frames = []
    for data, framed in chunks:
        if not framed:
            return "broken", frames
        frame = _frame(data)
        if frame is None:
            return "malformed", frames
        frames.append(frame)
    return None, frames


# -- host side ----------------------------------------------------------------------------
async def _host_reads(chunks):
    host_sock, peer_sock = socket.socketpair()
    transport = PipeTransport(host_sock, "fuzz")
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(peer_sock))
    outcome = []
    done = trio.Event()
    verdict, frames = _first_break(chunks)
    # the ping is frame 1: a frame with that id that is routed to callers answers it
    answered = any(f.id == 1 and f.WhichOneof("body") not in
                   ("chunk", "chunks", "telemetry_event", "call_host_tool", None) for f in frames)

    async def caller():
        try:
            outcome.append(await transport.ping())
        except (WorkerCrashed, TransportError) as exc:
            outcome.append(exc)
        done.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await transport.start(nursery)
            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()       # the ping is on its way
            for data, _ in chunks:
                try:
                    await peer.send_all(data)
                except trio.BrokenResourceError:
                    break
            if verdict == "malformed" and not answered:
                with trio.fail_after(5):     # the transport ends by itself, the peer open
                    await done.wait()
                assert isinstance(outcome[0], WorkerCrashed), outcome
                assert "protocol error" in str(outcome[0])
            await peer.aclose()
            await done.wait()
            await transport.aclose()
            nursery.cancel_scope.cancel()
    assert len(outcome) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces(TO_HOST), max_size=8))
def test_host_transport_survives_whatever_the_peer_sends(chunks):
    trio.run(_host_reads, chunks)


# -- worker side --------------------------------------------------------------------------
def _spawn_pipe_worker():
    host, child = socket.socketpair()
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakepit_bridge", "--adapter",
         "snakepit_bridge.adapters.showcase:ShowcaseAdapter", "--ready-fd", str(w),
         "--pipe-fd", str(child.fileno()), "--worker-id", "fuzz-1", "--heartbeat-timeout", "0"],
        pass_fds=(w, child.fileno()), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env=dict(os.environ, SNAKEPIT_SECRET="fuzz"))
    os.close(w)
    child.close()
    ready = select.select([r], [], [], 30)[0] and os.read(r, 4096)
    os.close(r)
    if not ready:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the worker did not report ready: {err.decode()[-2000:]}")
    return proc, host


def _read_until_ping_reply(sock, deadline):
    """True: the ping was answered; False: the worker closed the pipe; None: neither in time."""
    buf = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1 << 16)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return False
        if not data:
            return False
        buf += data
        while len(buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(buf)
            if len(buf) < HEADER.size + size:
                break
            frame = pb.Frame.FromString(buf[HEADER.size:HEADER.size + size])
            buf = buf[HEADER.size + size:]
            if frame.id == PING_ID and frame.WhichOneof("body") == "pong":
                return True
    return None


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(pieces(TO_WORKER), min_size=1, max_size=6))
def test_worker_never_hangs_on_whatever_the_host_sends(chunks):
    proc, host = _spawn_pipe_worker()
    try:
        for data, _ in chunks:
            try:
                host.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            host.sendall(_framed(pb.Frame(id=PING_ID, ping=pb.PingRequest()).SerializeToString()))
        except (BrokenPipeError, ConnectionResetError):
            pass
        verdict, _ = _first_break(chunks)
        if verdict is None:
            assert _read_until_ping_reply(host, time.monotonic() + 10) is True, \
                "every frame parsed, yet the ping went unanswered"
        elif verdict == "malformed":   # the worker ends the connection by itself
            assert _read_until_ping_reply(host, time.monotonic() + 10) is False, \
                "a frame that does not parse left the connection open"
        host.shutdown(socket.SHUT_WR)          # the host's end closes: the worker must go
        assert proc.wait(10) == 4, proc.stderr.read().decode()[-2000:]
    finally:
        host.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stderr.close()
