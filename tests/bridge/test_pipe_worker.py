"""The worker's side of the pipe transport, driven by raw frames over a real socketpair."""

import socket
import struct
import time

import pytest

from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import popen, read_ready, reap

HEADER = struct.Struct("<I")


def send(sock, frame=None, raw=None):
    data = frame.SerializeToString() if frame is not None else raw
    sock.sendall(HEADER.pack(len(data)) + data)


def recv(sock, timeout=10.0):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < HEADER.size:
        buf += sock.recv(HEADER.size - len(buf))
    (size,) = HEADER.unpack(buf)
    body = b""
    while len(body) < size:
        body += sock.recv(size - len(body))
    return pb.Frame.FromString(body)


@pytest.fixture
def pipe_worker():
    host, child = socket.socketpair()
    proc, r = popen("snakepit_bridge.adapters.showcase:ShowcaseAdapter",
                    "--pipe-fd", str(child.fileno()), pass_fds=(child.fileno(),))
    child.close()
    try:
        info = read_ready(r)
        assert info is not None and info["transport"] == "pipe", proc.stderr.read().decode()
        yield proc, host
    finally:
        reap(proc)
        host.close()


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
