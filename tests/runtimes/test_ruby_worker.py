"""The Ruby worker (snakepit_bridge/ruby/worker.rb) as a real process, driven by a plain
grpcio client: the worker contract, the showcase tools, and the capacity rule
(grpc-ruby answers RESOURCE_EXHAUSTED instead of queueing)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg

RUBY_DIR = Path(__file__).resolve().parents[2] / "snakepit_bridge" / "ruby"
WORKER = RUBY_DIR / "worker.rb"
SHOWCASE = RUBY_DIR / "showcase.rb"
SECRET = "ruby-test-secret"
MD = (("x-snakepit-secret", SECRET),)


def _ruby_missing() -> str | None:
    if shutil.which("ruby") is None:
        return "ruby is not installed (Debian: apt-get install ruby ruby-grpc)"
    probe = subprocess.run(["ruby", "-e", "require 'grpc'"], capture_output=True, text=True)
    if probe.returncode:
        return f"ruby cannot load grpc (Debian: apt-get install ruby-grpc): {probe.stderr[-300:]}"
    return None


_WHY = _ruby_missing()
if _WHY:
    if os.environ.get("CI"):  # CI installs ruby-grpc: a skip there would hide a broken setup
        raise RuntimeError(f"Ruby worker tests cannot run in CI: {_WHY}")
    print(f"\nskipping the Ruby worker tests: {_WHY}")
    pytest.skip(_WHY, allow_module_level=True)


# -- a worker process -------------------------------------------------------------------------
class Worker:
    """One spawned worker: ``proc``, ``info`` (the ready line), ``stub``, ``log()``."""

    def __init__(self, proc: subprocess.Popen, info: dict, log_path: Path) -> None:
        self.proc, self.info, self.log_path = proc, info, log_path
        self.channel = grpc.insecure_channel(f"127.0.0.1:{info['port']}")
        self.stub = pbg.WorkerServiceStub(self.channel)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, tool, args=None, *, rpc_timeout=30.0, **fields):
        """Execute; ``fields`` are ExecuteRequest fields (``timeout`` is the tool's)."""
        data, blobs = serialization.encode(args or {})
        return self.stub.Execute(pb.ExecuteRequest(tool=tool, args_json=data, blobs=blobs,
                                                   **fields), metadata=MD, timeout=rpc_timeout)

    def result(self, tool, args=None, **fields):
        resp = self.call(tool, args, **fields)
        assert resp.success, resp.error
        return serialization.decode(resp.result_json, resp.blobs)

    def stream(self, tool, args=None, **fields):
        data, blobs = serialization.encode(args or {})
        return self.stub.ExecuteStream(pb.ExecuteRequest(tool=tool, args_json=data, blobs=blobs,
                                                         **fields), metadata=MD, timeout=30)

    def in_flight(self) -> int:
        return self.stub.Heartbeat(pb.HeartbeatRequest(seq=1), metadata=MD, timeout=5).in_flight


def spawn(tmp_path: Path, *flags: str, script: Path = SHOWCASE, env: dict | None = None,
          secret: str | None = SECRET):
    """(process, read end of the ready pipe, log path); the caller reaps the process."""
    r, w = os.pipe()
    full_env = {k: v for k, v in os.environ.items() if k != "SNAKEPIT_SECRET"}
    if secret is not None:
        full_env["SNAKEPIT_SECRET"] = secret
    full_env.update(env or {})
    log_path = tmp_path / f"worker-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:  # a file, not a pipe: a chatty worker never blocks
        proc = subprocess.Popen(
            ["ruby", str(WORKER), "--script", str(script), "--ready-fd", str(w),
             "--worker-id", "rb-1", *flags],
            pass_fds=(w,), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            env=full_env)
    os.close(w)
    return proc, r, log_path


def read_ready(r: int, timeout: float = 30.0) -> dict | None:
    """The ready line, or None if the worker closed the fd without one."""
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                raise TimeoutError("the Ruby worker did not report ready in time")
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    return json.loads(data) if data else None


def reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdin:
        proc.stdin.close()


@contextlib.contextmanager
def ruby_worker(tmp_path, *flags, script=SHOWCASE, env=None):
    """A ready worker; always terminated and reaped."""
    proc, r, log_path = spawn(tmp_path, "--heartbeat-timeout", "0", *flags, script=script,
                              env=env)
    worker = None
    try:
        info = read_ready(r)
        assert info is not None, f"no ready line; worker output:\n{log_path.read_text()}"
        worker = Worker(proc, info, log_path)
        yield worker
    finally:
        if worker is not None:
            worker.channel.close()
        reap(proc)


def marked(path):
    """The tool has written its mark (a file it creates, then writes)."""
    return path.exists() and path.stat().st_size > 0


def wait_until(predicate, timeout=10.0, what="condition"):
    """Polls `predicate` until true (a deadline, not a sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def error_of(resp):
    assert not resp.success, f"expected an error, got {resp.result_json!r}"
    details = json.loads(resp.error.details_json) if resp.error.details_json else {}
    return resp.error, details


TEST_TOOLS = r'''
load ENV.fetch("SHOWCASE")   # the showcase tools, plus these
Snakepit.adapter name: "TestTools", version: "9.9.9"
MARKS = ENV.fetch("MARK_DIR")
PRODUCED = Hash.new(0)
Snakepit.on_initialize { File.write(File.join(MARKS, "initialized"), "yes") }
Snakepit.on_shutdown { File.write(File.join(MARKS, "shutdown"), "yes") }

Snakepit.tool(:secret_env) { |_args, _ctx| ENV["SNAKEPIT_SECRET"].to_s }
Snakepit.tool(:nargs, &->(args) { args.size })           # a lambda taking only args
Snakepit.tool(:bad_result) { |_a, _c| Object.new }
Snakepit.tool(:typed, params: { n: :int, f: { type: :float, default: 1 },
                                 flag: { type: :bool, default: false } }) { |args, _c| args }

Snakepit.tool :wait_cancel, params: { mark: :str } do |args, ctx|
  ctx.sleep(30)
  File.write(args["mark"], ctx.cancel_reason.to_s)
  "done"
end

Snakepit.stream_tool :forever, params: { mark: :str, size: { type: :int, default: 8 } } do |args, _ctx, out|
  i = 0
  begin
    loop do
      i += 1
      PRODUCED[args["mark"]] = i
      out << { "i" => i, "pad" => "x" * args["size"] }
    end
  ensure
    File.write(args["mark"], "closed after #{i}")
  end
end

Snakepit.tool(:produced, params: { mark: :str }) { |args, _ctx| PRODUCED[args["mark"]] }

Snakepit.stream_tool :fails_midway do |_args, _ctx, out|
  out << 1
  out << 2
  raise KeyError, "boom at 3"
end

Snakepit.stream_tool :ends_itself do |_args, _ctx, out|
  out << 1
  out.final({ "done" => true }, metadata: { "k" => "v" })
  out << 3
end

Snakepit.stream_tool(:squares, params: { n: :int }) do |args, _ctx|
  (1..args["n"]).lazy.map { |i| i * i }
end
'''


@pytest.fixture
def test_tools(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "test_tools.rb"
    script.write_text(TEST_TOOLS)
    return script, {"MARK_DIR": str(marks), "SHOWCASE": str(SHOWCASE)}, marks


# -- start-up and the basics --------------------------------------------------------------------
def test_ready_line_ping_echo_add_describe(tmp_path):
    with ruby_worker(tmp_path, "--max-concurrency", "3") as w:
        assert w.info["pid"] == w.proc.pid
        assert w.info["worker_id"] == "rb-1" and w.info["language"] == "ruby"
        assert w.info["protocol"] == 1 and w.info["port"] > 0
        pong = w.stub.Ping(pb.PingRequest(message="hi"), metadata=MD, timeout=5)
        assert (pong.message, pong.worker_id, pong.pid) == ("hi", "rb-1", w.proc.pid)
        assert w.result("ping")["status"] == "pong"
        assert w.result("echo", {"x": [1, "a", None], "y": {"z": 1.5}}) == \
            {"x": [1, "a", None], "y": {"z": 1.5}}
        total = w.result("add", {"a": 2, "b": 3})
        assert total == 5 and isinstance(total, int)
        assert w.result("add", {"a": 2.5, "b": 1}) == 3.5
        big = 2**62
        assert w.result("add", {"a": big, "b": big}) == 2**63   # no float rounding
        for op, out in [("upper", "ABC"), ("lower", "abc"), ("reverse", "cbA"), ("length", 3)]:
            assert w.result("process_text", {"text": "Abc", "operation": op}) == out

        desc = w.stub.Describe(pb.DescribeRequest(), metadata=MD, timeout=5)
        assert (desc.adapter, desc.language, desc.capacity) == ("ShowcaseAdapter", "ruby", 3)
        assert desc.worker_id == "rb-1" and desc.pid == w.proc.pid and desc.runtime_version
        tools = {t.name: t for t in desc.tools}
        assert {"ping", "echo", "add", "process_text", "sleep", "error_demo",
                "stream_progress", "call_host_demo"} <= set(tools)
        assert tools["stream_progress"].streaming and not tools["add"].streaming
        params = {p.name: p for p in tools["process_text"].parameters}
        assert params["text"].required and not params["operation"].required
        assert json.loads(params["operation"].default_json) == "upper"
        assert [p.name for p in tools["add"].parameters] == ["a", "b"]


def test_user_api_secret_hidden_and_hooks(tmp_path, test_tools):
    script, env, marks = test_tools
    with ruby_worker(tmp_path, script=script, env=env) as w:
        assert (marks / "initialized").read_text() == "yes"
        assert w.result("secret_env") == ""            # removed from the worker's ENV
        assert SECRET not in w.log()                   # and never logged
        assert w.result("nargs", {"a": 1, "b": 2}) == 2
        desc = w.stub.Describe(pb.DescribeRequest(), metadata=MD, timeout=5)
        assert (desc.adapter, desc.version) == ("TestTools", "9.9.9")
        assert w.result("typed", {"n": 1}) == {"n": 1, "f": 1.0, "flag": False}
        assert isinstance(w.result("typed", {"n": 1, "f": 2})["f"], float)  # int for float
        err, details = error_of(w.call("typed", {"n": "one"}))
        assert err.category == "invalid_arguments" and details["parameter"] == "n"
        err, details = error_of(w.call("typed", {"n": 1, "zz": 2}))
        assert err.category == "invalid_arguments" and details["unexpected"] == ["zz"]
        err, details = error_of(w.call("bad_result"))
        assert err.category == "unserializable_result" and details["type"] == "Object"
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(10) == 0
        assert (marks / "shutdown").read_text() == "yes"


def test_blobs_and_sessions(tmp_path):
    with ruby_worker(tmp_path) as w:
        data = bytes(range(256)) * 4
        assert w.result("process_binary", {"data": data})["length"] == len(data)
        assert w.result("process_binary", {"data": data, "operation": "reverse"}) == data[::-1]
        assert w.result("echo", {"raw": b"\x00\xff"}) == {"raw": b"\x00\xff"}
        np = pytest.importorskip("numpy")
        arr = np.arange(6, dtype="<f8").reshape(2, 3)
        stats = w.result("numpy_stats", {"array": arr})
        assert stats["mean"] == pytest.approx(2.5) and stats["shape"] == [2, 3]
        assert stats["doubled"].dtype == arr.dtype and (stats["doubled"] == arr * 2).all()

        assert w.result("session_counter", session_id="s1") == 1
        assert w.result("session_counter", session_id="s1") == 2
        assert w.result("session_counter", session_id="s2") == 1
        assert w.stub.EndSession(pb.EndSessionRequest(session_id="s1"), metadata=MD).existed
        assert w.result("session_counter", session_id="s1") == 1


# -- errors ---------------------------------------------------------------------------------------
def test_tool_errors_carry_type_and_backtrace(tmp_path):
    with ruby_worker(tmp_path) as w:
        expected = {"value": "ArgumentError", "runtime": "RuntimeError", "key": "KeyError",
                    "zero_division": "ZeroDivisionError", "custom": "ShowcaseError"}
        for kind, type_name in expected.items():
            err, details = error_of(w.call("error_demo", {"error_type": kind}))
            assert (err.category, err.type) == ("tool", type_name)
            assert "showcase.rb:" in err.traceback and details["tool"] == "error_demo"
        err, _ = error_of(w.call("error_demo", {"error_type": "custom"}))
        assert err.message == "a custom error from the showcase"

        err, details = error_of(w.call("no_such_tool"))
        assert err.category == "unknown_tool" and details["tool"] == "no_such_tool"
        assert "add" in details["available"] and "add" in err.message
        err, details = error_of(w.call("add", {"a": 1}))
        assert err.category == "invalid_arguments" and details["missing"] == ["b"]
        err, details = error_of(w.call("add", {"a": 1, "b": "2"}))
        assert err.category == "invalid_arguments" and details["parameter"] == "b"
        err, details = error_of(w.call("process_text", {"text": "a", "operation": "shout"}))
        assert err.category == "invalid_arguments" and "upper" in err.message
        err, _ = error_of(w.call("stream_progress", {"steps": 1}))
        assert err.category == "invalid_arguments" and "ExecuteStream" in err.message
        bad = w.stub.Execute(pb.ExecuteRequest(tool="echo", args_json=b"{nope"), metadata=MD)
        err, _ = error_of(bad)
        assert err.category == "invalid_arguments" and "JSON" in err.message
        err, _ = error_of(w.stub.Execute(pb.ExecuteRequest(tool="echo", args_json=b"[1]"),
                                         metadata=MD))
        assert err.category == "invalid_arguments" and "object" in err.message
        assert w.result("add", {"a": 1, "b": 1}) == 2     # still serving


# -- streaming ------------------------------------------------------------------------------------
def test_stream_order_final_chunk_and_unary_streamed(tmp_path, test_tools):
    script, env, _ = test_tools
    with ruby_worker(tmp_path, script=script, env=env) as w:
        chunks = list(w.stream("stream_progress", {"steps": 4, "delay_ms": 1}))
        assert [c.chunk_id for c in chunks] == [1, 2, 3, 4, 5]
        assert [json.loads(c.data_json)["step"] for c in chunks[:4]] == [1, 2, 3, 4]
        assert [c.is_final for c in chunks] == [False] * 4 + [True]
        assert chunks[-1].data_json == b"" and not chunks[-1].HasField("error")
        assert json.loads(chunks[1].data_json) == {"step": 2, "total": 4, "progress": 0.5}

        squares = list(w.stream("squares", {"n": 3}))          # an Enumerator tool
        assert [c.data_json for c in squares] == [b"1", b"4", b"9", b""]

        ended = list(w.stream("ends_itself"))                   # marks its own final chunk
        assert [(c.chunk_id, c.is_final) for c in ended] == [(1, False), (2, True)]
        assert json.loads(ended[1].data_json) == {"done": True}
        assert dict(ended[1].metadata) == {"k": "v"}

        failed = list(w.stream("fails_midway"))
        assert [c.data_json for c in failed[:2]] == [b"1", b"2"]
        assert failed[-1].is_final and failed[-1].error.type == "KeyError"
        assert len(failed) == 3

        one = list(w.stream("add", {"a": 1, "b": 2}))           # unary tool: one final chunk
        assert [(c.chunk_id, c.data_json, c.is_final) for c in one] == [(1, b"3", True)]
        unknown = list(w.stream("nope"))
        assert len(unknown) == 1 and unknown[0].error.category == "unknown_tool"


def test_stream_early_close_stops_the_producer(tmp_path, test_tools):
    script, env, marks = test_tools
    with ruby_worker(tmp_path, script=script, env=env) as w:
        mark = marks / "forever"
        call = w.stream("forever", {"mark": str(mark)})
        assert json.loads(next(call).data_json)["i"] == 1
        call.cancel()
        wait_until(mark.exists, what="the stream's ensure to run")
        assert mark.read_text().startswith("closed after")
        wait_until(lambda: w.in_flight() == 0, what="the stream's slot to be free")
        assert w.result("add", {"a": 1, "b": 1}) == 2


def test_stream_backpressure_with_a_slow_reader(tmp_path, test_tools):
    script, env, marks = test_tools
    # capacity 2: the stalled stream holds one slot, the "produced" probe uses the other
    with ruby_worker(tmp_path, "--max-concurrency", "2", script=script, env=env) as w:
        mark = str(marks / "slow")
        call = w.stream("forever", {"mark": mark, "size": 64 * 1024})
        next(call)
        # The reader stalls. The producer may fill grpc's flow-control windows (a few MiB,
        # grown by grpc's BDP probing) plus the worker's 2-chunk buffer, then must wait.
        # Filling them takes longer on a loaded machine: first until it stops (deadline)...
        deadline = time.monotonic() + 30
        last = w.result("produced", {"mark": mark})
        while time.monotonic() < deadline:
            time.sleep(0.3)  # observing that something does NOT happen needs time windows
            now = w.result("produced", {"mark": mark})
            if now == last:
                break
            last = now
        # ...then it must stay stopped
        counts = []
        for _ in range(3):
            time.sleep(0.3)  # observing that something does NOT happen needs time windows
            counts.append(w.result("produced", {"mark": mark}))
        assert counts[0] == counts[1] == counts[2], f"the producer kept running: {counts}"
        assert counts[-1] < 256, f"{counts[-1]} chunks of 64 KiB ahead of a stalled reader"
        got = [json.loads(next(call).data_json)["i"] for _ in range(50)]
        assert got == list(range(2, 52))          # nothing lost or reordered meanwhile
        call.cancel()


# -- timeouts, cancellation, concurrency ----------------------------------------------------------
def test_timeout_and_host_cancel_reach_the_tool(tmp_path, test_tools):
    script, env, marks = test_tools
    with ruby_worker(tmp_path, script=script, env=env) as w:
        t0 = time.monotonic()
        resp = w.stub.Execute(pb.ExecuteRequest(
            tool="wait_cancel", args_json=json.dumps({"mark": str(marks / "t")}).encode(),
            timeout=0.3), metadata=MD, timeout=10)
        err, _ = error_of(resp)
        assert err.category == "timeout" and time.monotonic() - t0 < 1.5
        # written, not only created: File.write creates the file before it writes
        wait_until(lambda: marked(marks / "t"), what="the tool to see its timeout")
        assert (marks / "t").read_text() == "timeout"

        future = w.stub.Execute.future(pb.ExecuteRequest(
            tool="wait_cancel", args_json=json.dumps({"mark": str(marks / "c")}).encode()),
            metadata=MD)
        wait_until(lambda: w.in_flight() == 1, what="the tool to start")
        future.cancel()
        wait_until(lambda: marked(marks / "c"), timeout=5, what="the tool to see the cancel")
        assert (marks / "c").read_text() == "cancelled"
        wait_until(lambda: w.in_flight() == 0, what="the slot to be free")

        # a stream past its timeout ends with a final chunk carrying the timeout error
        t0 = time.monotonic()
        chunks = list(w.stream("stream_data", {"count": 1000, "delay": 0.05}, timeout=0.3))
        assert time.monotonic() - t0 < 1.5
        assert [c.chunk_id for c in chunks] == list(range(1, len(chunks) + 1))
        assert chunks[-1].is_final and chunks[-1].error.category == "timeout"
        assert 2 <= len(chunks) < 20

        # a grpc deadline is a cancel too
        with pytest.raises(grpc.RpcError) as info:
            w.stub.Execute(pb.ExecuteRequest(tool="sleep", args_json=b'{"seconds": 20}'),
                           metadata=MD, timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_until(lambda: w.in_flight() == 0, timeout=3, what="the sleep to end early")


def test_four_sleeps_run_concurrently_with_max_concurrency_4(tmp_path):
    with ruby_worker(tmp_path, "--max-concurrency", "4") as w:
        w.result("ping")   # warm
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            t0 = time.monotonic()
            results = list(pool.map(lambda _: w.result("sleep", {"seconds": 0.5}), range(4)))
            elapsed = time.monotonic() - t0
        assert elapsed < 1.5, f"4 sleeps of 0.5 s took {elapsed:.2f} s with capacity 4"
        assert all(r["cancelled"] is False and r["slept"] >= 0.45 for r in results)
        # ...and never more than 4 at once: 8 sleeps take two rounds
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            t0 = time.monotonic()
            list(pool.map(lambda _: w.result("sleep", {"seconds": 0.3}), range(8)))
            assert time.monotonic() - t0 >= 0.55


def test_200_concurrent_calls_within_capacity_never_resource_exhausted(tmp_path):
    capacity = 4
    with ruby_worker(tmp_path, "--max-concurrency", str(capacity)) as w:
        # What the host does besides tool calls: an open telemetry stream and heartbeats.
        controls: queue.Queue = queue.Queue()
        controls.put(pb.TelemetryControl(enabled=True, sampling_rate=1.0))
        telemetry = w.stub.StreamTelemetry(iter(controls.get, None), metadata=MD)
        stop = threading.Event()
        control_errors: list = []

        def heartbeats():
            seq = 0
            while not stop.is_set():
                seq += 1
                try:
                    w.stub.Heartbeat(pb.HeartbeatRequest(seq=seq), metadata=MD, timeout=5)
                    w.stub.Describe(pb.DescribeRequest(), metadata=MD, timeout=5)
                except grpc.RpcError as exc:
                    control_errors.append(exc.code())

        def one(i):
            if i % 10 == 0:
                chunks = list(w.stream("stream_progress", {"steps": 3, "delay_ms": 0}))
                assert chunks[-1].is_final and len(chunks) == 4
                return i
            if i % 2:
                return w.result("add", {"a": i, "b": 1}) - 1
            return w.result("echo", {"i": i})["i"]

        hb = threading.Thread(target=heartbeats)
        hb.start()
        try:
            # The test client, like the host, never has more than `capacity` calls open.
            with concurrent.futures.ThreadPoolExecutor(capacity) as pool:
                results = list(pool.map(one, range(200)))
        finally:
            stop.set()
            hb.join()
            telemetry.cancel()
            controls.put(None)
        assert results == list(range(200))
        assert control_errors == []


def test_calls_beyond_the_grpc_pool_wait_instead_of_resource_exhausted(tmp_path):
    # capacity 1 → a grpc pool of 1 + 8 threads; 16 calls at once are more than the pool:
    # grpc-ruby's stock server would refuse some with RESOURCE_EXHAUSTED; ours queues them.
    with ruby_worker(tmp_path, "--max-concurrency", "1") as w:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            t0 = time.monotonic()
            results = list(pool.map(lambda _: w.result("sleep", {"seconds": 0.05}), range(16)))
            elapsed = time.monotonic() - t0
        assert all(r["cancelled"] is False for r in results)
        assert elapsed >= 16 * 0.05 * 0.9   # one at a time: capacity 1 holds
        assert w.in_flight() == 0


# -- security and lifetime ------------------------------------------------------------------------
def test_calls_without_the_secret_are_unauthenticated(tmp_path):
    with ruby_worker(tmp_path) as w:
        attempts = [
            lambda md: w.stub.Ping(pb.PingRequest(), metadata=md, timeout=5),
            lambda md: w.stub.Execute(pb.ExecuteRequest(tool="ping"), metadata=md, timeout=5),
            lambda md: list(w.stub.ExecuteStream(pb.ExecuteRequest(tool="stream_progress"),
                                                 metadata=md, timeout=5)),
            lambda md: list(w.stub.StreamTelemetry(iter([pb.TelemetryControl(enabled=True)]),
                                                   metadata=md, timeout=5)),
        ]
        for attempt in attempts:
            for md in [(), (("x-snakepit-secret", "wrong"),),
                       (("x-snakepit-secret", SECRET[:-1]),)]:
                with pytest.raises(grpc.RpcError) as info:
                    attempt(md)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert w.result("ping")["status"] == "pong"


def test_stdin_eof_exits_within_2_seconds(tmp_path):
    with ruby_worker(tmp_path) as w:
        t0 = time.monotonic()
        w.proc.stdin.close()
        assert w.proc.wait(5) == 4
        assert time.monotonic() - t0 < 2.0


def test_sigterm_finishes_in_flight_work_and_exits_0(tmp_path, test_tools):
    script, env, marks = test_tools
    with ruby_worker(tmp_path, "--shutdown-grace", "5", script=script, env=env) as w:
        running = w.stub.Execute.future(pb.ExecuteRequest(
            tool="sleep", args_json=b'{"seconds": 0.5}'), metadata=MD, timeout=10)
        wait_until(lambda: w.in_flight() == 1, what="the sleep to start")
        w.proc.send_signal(signal.SIGTERM)
        resp = running.result()
        assert resp.success and json.loads(resp.result_json)["cancelled"] is False
        assert w.proc.wait(10) == 0
        assert (marks / "shutdown").read_text() == "yes"


def test_sigterm_cancels_work_that_outlives_the_grace(tmp_path, test_tools):
    script, env, marks = test_tools
    with ruby_worker(tmp_path, "--shutdown-grace", "0.5", script=script, env=env) as w:
        running = w.stub.Execute.future(pb.ExecuteRequest(tool="wait_cancel", args_json=json.dumps(
            {"mark": str(marks / "g")}).encode()), metadata=MD, timeout=30)
        wait_until(lambda: w.in_flight() == 1, what="the tool to start")
        t0 = time.monotonic()
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(10) == 0
        assert time.monotonic() - t0 < 4.0
        assert (marks / "g").read_text() in ("cancelled", "shutdown")
        assert running.exception() is not None   # never answered: cut off by the shutdown


def test_bad_usage_missing_secret_and_failing_tools_file(tmp_path):
    for flags, env_secret in [(["--max-concurrency", "0"], SECRET), (["--bogus"], SECRET),
                              (["--log-level", "loud"], SECRET), ([], None)]:
        proc, r, log_path = spawn(tmp_path, *flags, secret=env_secret)
        try:
            assert proc.wait(10) == 2
            assert read_ready(r) is None
            assert "usage" in log_path.read_text() or "SNAKEPIT_SECRET" in log_path.read_text()
        finally:
            reap(proc)
    broken = tmp_path / "broken.rb"
    broken.write_text("def helper\n  raise 'boom in the tools file'\nend\nhelper\n")
    proc, r, log_path = spawn(tmp_path, script=broken)
    try:
        assert proc.wait(10) == 3
        assert read_ready(r) is None
        out = log_path.read_text()
        assert "boom in the tools file" in out and "broken.rb:2" in out
    finally:
        reap(proc)


# -- the host side: HostService calls and heartbeats -----------------------------------------------
class FakeHost(pbg.HostServiceServicer):
    def __init__(self):
        self.calls: list = []
        self.slow_call_ended = threading.Event()

    def _check(self, context):
        if dict(context.invocation_metadata()).get("x-snakepit-secret") != SECRET:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad secret")

    def CallHostTool(self, request, context):
        self._check(context)
        self.calls.append(request)
        args = serialization.decode(request.args_json, request.blobs)
        if request.tool == "host_echo":
            data, blobs = serialization.encode(args)
            return pb.ExecuteResponse(success=True, result_json=data, blobs=blobs)
        if request.tool == "host_slow":   # answers only when the worker gives up the call
            ended = threading.Event()
            context.add_callback(ended.set)
            ended.wait(30)
            self.slow_call_ended.set()
            return pb.ExecuteResponse(success=True, result_json=b"null")
        return pb.ExecuteResponse(success=False, error=pb.ErrorInfo(
            category="unknown_tool", type="UnknownTool", message=f"no host tool {request.tool}"))

    def Heartbeat(self, request, context):
        self._check(context)
        self.calls.append(request)
        return pb.HostHeartbeat(seq=request.seq, timestamp=time.time())


@pytest.fixture
def fake_host():
    host = FakeHost()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    pbg.add_HostServiceServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield host, f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


def test_call_host_tool_through_the_host_service(tmp_path, fake_host):
    host, address = fake_host
    with ruby_worker(tmp_path, "--host-address", address) as w:
        out = w.result("call_host_demo", {"tool_name": "host_echo",
                                          "args": {"s": "text", "n": 3, "raw": b"\x01\x02"}},
                       session_id="sess", correlation_id="corr-1")
        assert out == {"host_result": {"s": "text", "n": 3, "raw": b"\x01\x02"}}
        req = host.calls[-1]
        assert (req.tool, req.session_id, req.correlation_id, req.worker_id) == \
            ("host_echo", "sess", "corr-1", "rb-1")
        err, _ = error_of(w.call("call_host_demo", {"tool_name": "missing"}))
        assert (err.category, err.type) == ("tool", "HostToolError")
        assert "no host tool missing" in err.message
        # The request's timeout bounds the host call as well: it is cancelled with it.
        t0 = time.monotonic()
        err, _ = error_of(w.call("call_host_demo", {"tool_name": "host_slow"}, timeout=0.5))
        assert err.category == "timeout" and time.monotonic() - t0 < 2.0
        assert host.slow_call_ended.wait(5), "the host call outlived the request"
    with ruby_worker(tmp_path) as w:   # no --host-address
        err, _ = error_of(w.call("call_host_demo", {"tool_name": "host_echo"}))
        assert err.type == "HostToolError" and "host" in err.message


def test_heartbeat_watchdog(tmp_path, fake_host):
    host, address = fake_host
    # Dependent, no heartbeats and no host to probe: exits 4 after the timeout.
    proc, r, _ = spawn(tmp_path, "--heartbeat-timeout", "0.5", "--heartbeat-interval", "0.2")
    try:
        assert read_ready(r) is not None
        t0 = time.monotonic()
        assert proc.wait(5) == 4
        assert time.monotonic() - t0 < 2.5
    finally:
        reap(proc)
    # A host that answers the probe keeps it alive; so does --no-dependent.
    for flags in (["--host-address", address], ["--no-dependent"]):
        with ruby_worker(tmp_path, "--heartbeat-timeout", "0.3", "--heartbeat-interval", "0.1",
                         *flags) as w:
            wait_until(lambda: any(isinstance(c, pb.WorkerHeartbeat) for c in host.calls)
                       or w.proc.poll() is not None or "--no-dependent" in flags,
                       what="a heartbeat probe")
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:   # well past the timeout: still serving
                assert w.proc.poll() is None
                assert w.result("ping")["status"] == "pong"


def test_telemetry_stream_events_and_controls(tmp_path):
    with ruby_worker(tmp_path) as w:
        controls: queue.Queue = queue.Queue()
        controls.put(pb.TelemetryControl(enabled=True, sampling_rate=1.0))
        events = w.stub.StreamTelemetry(iter(controls.get, None), metadata=MD, timeout=30)
        try:
            first = next(events)
            assert list(first.event) == ["telemetry", "configured"]
            assert first.worker_id == "rb-1"
            w.result("emit_event", {"name": "demo.hello", "value": 7}, correlation_id="c-9")
            ev = next(events)
            assert list(ev.event) == ["demo", "hello"] and ev.correlation_id == "c-9"
            assert json.loads(ev.measurements_json) == {"value": 7}
            controls.put(pb.TelemetryControl(enabled=True, sampling_rate=1.0, deny=["demo"]))
            assert list(next(events).event) == ["telemetry", "configured"]
            w.result("emit_event", {"name": "demo.hidden"})
            w.result("emit_event", {"name": "other.shown"})
            assert list(next(events).event) == ["other", "shown"]
        finally:
            events.cancel()
            controls.put(None)


def test_heartbeat_lists_the_request_ids_still_running(tmp_path, test_tools):
    """The host keeps a worker whose cancelled call still runs out of rotation until its
    request id leaves the heartbeat's `running` list (ADR 0002)."""
    script, env, marks = test_tools
    with ruby_worker(tmp_path, script=script, env=env) as w:
        def running():
            return list(w.stub.Heartbeat(pb.HeartbeatRequest(seq=1), metadata=MD,
                                         timeout=5).running)
        future = w.stub.Execute.future(pb.ExecuteRequest(
            request_id="r-7", tool="wait_cancel",
            args_json=json.dumps({"mark": str(marks / "r")}).encode()), metadata=MD, timeout=30)
        wait_until(lambda: running() == ["r-7"], what="the call to be listed")
        future.cancel()
        wait_until(lambda: running() == [], what="the cancelled tool to end")
