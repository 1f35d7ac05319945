"""Spawn a real worker process and talk to it with a plain grpcio client."""

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import grpc
import orjson

from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg

SECRET = "test-secret-123"
MD = (("x-snakepit-secret", SECRET),)
HERE = Path(__file__).parent
SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"


def popen(adapter=SHOWCASE, *extra, env=None, pass_fds=()):
    """(process, read end of the ready pipe); the caller must reap the process."""
    r, w = os.pipe()
    full_env = dict(os.environ, SNAKEPIT_SECRET=SECRET,
                    PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakepit_bridge", "--adapter", adapter, "--ready-fd", str(w),
         "--worker-id", "test-1", "--heartbeat-timeout", "0", *extra],
        pass_fds=(w, *pass_fds), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=full_env)
    os.close(w)
    return proc, r


def read_ready(r, timeout=30.0):
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([r], [], [], left)[0]:
            raise TimeoutError("worker did not report ready")
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    return json.loads(data) if data else None


def reap(proc, grace=5.0):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()


@contextlib.contextmanager
def worker(adapter=SHOWCASE, *extra, env=None):
    """Yields (proc, ready_info, stub); always terminates and reaps the worker."""
    proc, r = popen(adapter, *extra, env=env)
    try:
        info = read_ready(r)
        assert info is not None, proc.stderr.read().decode()
        channel = grpc.insecure_channel(f"127.0.0.1:{info['port']}", options=[
            ("grpc.max_send_message_length", 300 * 1024 * 1024),
            ("grpc.max_receive_message_length", 300 * 1024 * 1024)])
        with channel:
            yield proc, info, pbg.WorkerServiceStub(channel)
    finally:
        reap(proc)


def call(stub, tool, args=None, raw=None, blobs=None, **kw):
    from snakepit_bridge import serialization
    if raw is None:
        raw, enc_blobs = serialization.encode(args or {})
        blobs = {**enc_blobs, **(blobs or {})}
    return stub.Execute(pb.ExecuteRequest(tool=tool, args_json=raw, blobs=blobs or {}, **kw),
                        metadata=MD, timeout=30)


def result(resp):
    from snakepit_bridge import serialization
    assert resp.success, resp.error
    return serialization.decode(resp.result_json, resp.blobs)


def stream(stub, tool, args=None, **kw):
    from snakepit_bridge import serialization
    raw, blobs = serialization.encode(args or {})
    return stub.ExecuteStream(pb.ExecuteRequest(tool=tool, args_json=raw, blobs=blobs, **kw),
                              metadata=MD, timeout=60)


# -- the pipe transport, as raw frames ----------------------------------------------------------
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


def recv_chunks(sock, fid, timeout=10.0):
    """The chunks of stream ``fid`` in the next frame (a lone ``chunk`` or a ``chunks`` batch)."""
    frame = recv(sock, timeout)
    assert frame.id == fid, frame
    return chunks_of(frame)


def chunks_of(frame):
    """The stream chunks of a ``chunk`` or ``chunks`` frame (packed ones as ToolChunks)."""
    kind = frame.WhichOneof("body")
    assert kind in ("chunk", "chunks"), frame
    if kind == "chunks" and frame.chunks.packed_json:   # plain chunks, as ToolChunks here
        assert not frame.chunks.chunks, frame
        items = orjson.loads(frame.chunks.packed_json)
        assert isinstance(items, list) and items, frame
        return [pb.ToolChunk(chunk_id=frame.chunks.first_chunk_id + i,
                             data_json=orjson.dumps(item)) for i, item in enumerate(items)]
    return list(frame.chunks.chunks) if kind == "chunks" else [frame.chunk]


@contextlib.contextmanager
def pipe_worker(adapter=SHOWCASE, *extra, env=None):
    """Yields (proc, host end of the pipe); always terminates and reaps the worker."""
    host, child = socket.socketpair()
    proc, r = popen(adapter, "--pipe-fd", str(child.fileno()), *extra, env=env,
                    pass_fds=(child.fileno(),))
    child.close()
    try:
        info = read_ready(r)
        assert info is not None and info["transport"] == "pipe", proc.stderr.read().decode()
        yield proc, host
    finally:
        reap(proc)
        host.close()
