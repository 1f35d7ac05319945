"""The Python worker as a real process, driven by a plain grpcio client (no host library)."""

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import psutil
import pytest

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

from worker_proc import MD, call, popen, read_ready, reap, result, stream, worker

# The worker module lives beside this file; make it importable for the test process too.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def showcase():
    with worker() as w:
        yield w


def test_ready_line_and_describe(showcase):
    proc, info, stub = showcase
    assert info["pid"] == proc.pid and info["port"] > 0 and info["language"] == "python"
    d = stub.Describe(pb.DescribeRequest(), metadata=MD)
    tools = {t.name: t for t in d.tools}
    assert d.adapter == "ShowcaseAdapter" and d.capacity == 1 and d.language == "python"
    assert tools["stream_progress"].streaming and not tools["add"].streaming
    params = {p.name: p for p in tools["process_text"].parameters}
    assert params["text"].required and not params["operation"].required
    assert serialization.loads(params["operation"].default_json) == "upper"


def test_auth_required(showcase):
    _, _, stub = showcase
    with pytest.raises(grpc.RpcError) as info:
        stub.Ping(pb.PingRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        stub.Ping(pb.PingRequest(), metadata=(("x-snakepit-secret", "wrong"),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ExecuteStream(pb.ExecuteRequest(tool="ping_stream")))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_showcase_tools(showcase):
    _, info, stub = showcase
    assert result(call(stub, "ping"))["status"] == "pong"
    assert result(call(stub, "echo", {"x": 1, "y": [1, "a"]})) == {"x": 1, "y": [1, "a"]}
    assert result(call(stub, "add", {"a": 2, "b": 3})) == 5
    assert isinstance(result(call(stub, "add", {"a": 2, "b": 3})), int)
    assert result(call(stub, "add", {"a": 2.5, "b": 1})) == 3.5
    assert result(call(stub, "adapter_info"))["adapter"] == "ShowcaseAdapter"
    for op, out in [("upper", "ABC"), ("lower", "abc"), ("reverse", "cbA"), ("length", 3)]:
        assert result(call(stub, "process_text", {"text": "Abc", "operation": op})) == out
    bad = call(stub, "process_text", {"text": "a", "operation": "shout"})
    assert not bad.success and "upper" in bad.error.message
    stats = result(call(stub, "get_stats"))
    assert stats["pid"] == info["pid"] and stats["rss"] > 0 and "cpu_percent" in stats
    assert result(call(stub, "cpu_burn", {"ms": 5}))["iterations"] > 0
    assert result(call(stub, "sleep", {"seconds": 0.05}))["cancelled"] is False
    assert result(call(stub, "session_counter", session_id="s1")) == 1
    assert result(call(stub, "session_counter", session_id="s1")) == 2
    assert result(call(stub, "session_counter", session_id="s2")) == 1
    stub.EndSession(pb.EndSessionRequest(session_id="s1"), metadata=MD)
    assert result(call(stub, "session_counter", session_id="s1")) == 1   # state released
    chunks = list(stream(stub, "ping_stream", {"count": 3}))
    assert [serialization.decode(c.data_json)["ping"] for c in chunks[:-1]] == [1, 2, 3]
    assert [serialization.decode(c.data_json)["index"]
            for c in list(stream(stub, "stream_data", {"count": 2}))[:-1]] == [0, 1]


@pytest.mark.parametrize("kind,exc", [("value", "ValueError"), ("runtime", "RuntimeError"),
                                      ("key", "KeyError"), ("zero_division",
                                                            "ZeroDivisionError"),
                                      ("custom", "ShowcaseError")])
def test_tool_errors_with_traceback(showcase, kind, exc):
    _, _, stub = showcase
    resp = call(stub, "error_demo", {"error_type": kind})
    assert not resp.success
    assert resp.error.category == "tool" and resp.error.type == exc
    assert "Traceback" in resp.error.traceback and "error_demo" in resp.error.traceback
    assert result(call(stub, "add", {"a": 1, "b": 1})) == 2   # still serving


def test_argument_errors(showcase):
    _, _, stub = showcase
    resp = call(stub, "add", {"a": 1})
    assert resp.error.category == "invalid_arguments" and "b" in resp.error.message
    resp = call(stub, "add", {"a": 1, "b": 2, "c": 3})
    assert resp.error.category == "invalid_arguments"
    assert serialization.loads(resp.error.details_json)["unexpected"] == ["c"]
    resp = call(stub, "add", {"a": "1", "b": 2})
    assert resp.error.category == "invalid_arguments" and "'a'" in resp.error.message
    resp = call(stub, "nope")
    assert resp.error.category == "unknown_tool"
    assert "ping" in serialization.loads(resp.error.details_json)["available"]
    resp = call(stub, "add", raw=b"{not json")
    assert resp.error.category == "invalid_arguments" and "JSON" in resp.error.message
    resp = call(stub, "add", raw=b"[1, 2]")
    assert resp.error.category == "invalid_arguments"
    resp = call(stub, "stream_progress", {"steps": 2})
    assert resp.error.category == "invalid_arguments" and "stream" in resp.error.message
    assert result(call(stub, "add", {"a": 1, "b": 1})) == 2


def test_typed_arguments():
    with worker("bridge_adapters:ProbeAdapter") as (_, _, stub):
        ok = {"n": 1, "x": 2, "s": "a", "flag": True, "items": [1], "opts": {"k": 1}}
        out = result(call(stub, "typed", ok))
        assert out["x"] == 2.0 and isinstance(out["x"], float)   # int accepted for float
        for field, bad in [("n", 1.5), ("n", True), ("s", 3), ("flag", 1), ("items", {}),
                           ("opts", [])]:
            resp = call(stub, "typed", {**ok, field: bad})
            assert resp.error.category == "invalid_arguments", (field, bad)
            assert serialization.loads(resp.error.details_json)["parameter"] == field
        assert result(call(stub, "typed", {**ok, "maybe": None}))["maybe"] is None
        resp = call(stub, "unserializable")
        assert resp.error.category == "unserializable_result" and "object" in resp.error.message


def test_stream_order_final_and_unary_as_stream(showcase):
    _, _, stub = showcase
    chunks = list(stream(stub, "stream_progress", {"steps": 4, "delay_ms": 1}))
    assert [c.chunk_id for c in chunks] == [1, 2, 3, 4, 5]
    assert [serialization.decode(c.data_json)["step"] for c in chunks[:4]] == [1, 2, 3, 4]
    assert chunks[-1].is_final and chunks[-1].data_json == b""
    assert not any(c.is_final for c in chunks[:-1])
    unary = list(stream(stub, "add", {"a": 1, "b": 2}))
    assert len(unary) == 1 and unary[0].is_final and serialization.decode(unary[0].data_json) == 3
    err = list(stream(stub, "nope"))
    assert len(err) == 1 and err[0].is_final and err[0].error.category == "unknown_tool"


def test_early_close_stops_producer_and_backpressure(tmp_path):
    marker = tmp_path / "closed"
    with worker("bridge_adapters:ProbeAdapter", "--max-concurrency", "2") as (_, _, stub):
        it = stream(stub, "big_stream", {"count": 100000, "size": 64 * 1024,
                                         "marker": str(marker)})
        next(it)
        time.sleep(0.5)   # a slow reader: the producer must be held back meanwhile
        produced = result(call(stub, "produced_count"))
        assert produced < 500, produced      # bounded by flow control, not 100000
        it.cancel()
        deadline = time.monotonic() + 10
        # written, not only created (write_text creates the file, then writes)
        while not (marker.exists() and marker.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists() and marker.read_text().startswith("closed after")
        assert result(call(stub, "sleep", {"seconds": 0.01})) == 0.01


def test_blobs_and_numpy_round_trip(showcase):
    _, _, stub = showcase
    data = bytes(range(256)) * 1000
    out = result(call(stub, "process_binary", {"data": data, "operation": "reverse"}))
    assert out == data[::-1]
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    stats = result(call(stub, "numpy_stats", {"array": arr}))
    assert stats["shape"] == [3, 4] and stats["dtype"] == "<f4"
    assert isinstance(stats["doubled"], np.ndarray) and stats["doubled"].dtype == np.float32
    np.testing.assert_array_equal(stats["doubled"], arr * 2)
    echoed = result(call(stub, "echo", {"m": np.eye(2, dtype=np.int64), "b": b"\x00\xff"}))
    assert echoed["m"].dtype == np.int64 and echoed["b"] == b"\x00\xff"


def test_oversized_and_malformed_messages_keep_serving(showcase):
    _, _, stub = showcase
    too_big = b"x" * (300 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as info:
        call(stub, "process_binary", blobs={"big": pb.Blob(data=too_big)},
             raw=b'{"data": {"__blob__": "big"}}')
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    resp = call(stub, "process_binary", raw=b'{"data": {"__blob__": "missing"}}')
    assert resp.error.category == "invalid_arguments"
    assert result(call(stub, "add", {"a": 1, "b": 1})) == 2


def test_concurrency_four_sleeps():
    with worker("snakepit_bridge.adapters.showcase:ShowcaseAdapter", "--max-concurrency",
                "4") as (_, _, stub):
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            outs = list(ex.map(lambda _: call(stub, "sleep", {"seconds": 0.5}), range(4)))
        assert all(o.success for o in outs)
        assert time.monotonic() - t0 < 1.5


def test_cancel_reaches_sync_tool(showcase):
    _, _, stub = showcase
    fut = stub.Execute.future(pb.ExecuteRequest(tool="sleep", args_json=b'{"seconds": 30}'),
                              metadata=MD)
    time.sleep(0.3)
    fut.cancel()
    t0 = time.monotonic()   # the slot comes back quickly: the tool saw ctx.cancelled
    assert result(call(stub, "add", {"a": 1, "b": 1})) == 2
    assert time.monotonic() - t0 < 5


def test_deadline_in_request(showcase):
    _, _, stub = showcase
    resp = call(stub, "sleep", {"seconds": 5}, timeout=0.2)
    assert resp.error.category == "timeout"


def test_sigterm_exits_zero_and_calls_shutdown(tmp_path):
    marker = tmp_path / "shutdown"
    proc, r = popen("bridge_adapters:ProbeAdapter", env={"SHUTDOWN_MARKER": str(marker)})
    try:
        assert read_ready(r)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert marker.read_text() == "shutdown called"
    finally:
        reap(proc)


def test_stdin_eof_exits_promptly():
    proc, r = popen()
    try:
        assert read_ready(r)
        t0 = time.monotonic()
        proc.stdin.close()
        proc.wait(5)
        assert time.monotonic() - t0 < 2
    finally:
        reap(proc)


def test_parent_killed_worker_exits(tmp_path):
    """A parent that dies by SIGKILL closes the worker's stdin: the worker follows."""
    script = tmp_path / "parent.py"
    script.write_text(f"""
import os, subprocess, sys, time
sys.path.insert(0, {os.path.dirname(__file__)!r})
from worker_proc import popen, read_ready
proc, r = popen()
read_ready(r)
print(proc.pid, flush=True)
time.sleep(600)
""")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              env=dict(os.environ))
    try:
        pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("worker survived its parent by more than 2 s")
    finally:
        parent.stdout.close()


@pytest.mark.parametrize("dependent", [True, False])
def test_heartbeat_watchdog_dependent_vs_not(dependent):
    """No host heartbeats for 0.5 s: a dependent worker exits (code 4), another serves on."""
    r_fd, w_fd = os.pipe()
    extra = [] if dependent else ["--no-dependent"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakepit_bridge", "--adapter",
         "snakepit_bridge.adapters.showcase:ShowcaseAdapter", "--ready-fd", str(w_fd),
         "--heartbeat-interval", "0.1", "--heartbeat-timeout", "0.5", *extra],
        pass_fds=(w_fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=dict(os.environ, SNAKEPIT_SECRET="x"))
    os.close(w_fd)
    try:
        assert read_ready(r_fd)
        try:
            code = proc.wait(3)
        except subprocess.TimeoutExpired:
            code = None
        assert code == (4 if dependent else None)
    finally:
        reap(proc)


def test_refuses_concurrency_without_thread_safety():
    proc, r = popen("bridge_adapters:NotThreadSafe", "--max-concurrency", "2")
    try:
        assert proc.wait(30) == 2
        assert "thread-safe" in proc.stderr.read().decode()
        os.close(r)
    finally:
        reap(proc)


def test_failed_initialize_exits_nonzero():
    proc, r = popen("bridge_adapters:FailingInit")
    try:
        assert read_ready(r) is None
        assert proc.wait(30) == 3
        assert "cannot load the model" in proc.stderr.read().decode()
    finally:
        reap(proc)
