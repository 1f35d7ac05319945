"""snakepit against its peers, same machine, same run: one markdown table, all numbers as JSON.

    python benchmarks/run_all.py [--reps 5] [--quick] [--only pipe,grpc,...]     (make bench)

Peers, all with the same worker count: snakepit over both transports (``PoolConfig(transport=
"pipe")`` and ``"grpc"``), concurrent.futures.ProcessPoolExecutor, multiprocessing.Pool, a bare
grpcio client driven from trio (the generated stub to showcase worker processes, no snakepit on
the host: cpu_per_call.BareGrpc) and a raw length-prefixed pipe echo from trio (the floor).

Workloads: sequential ping latency (1 worker); ping throughput with 2 and 4 workers and 1, 8
and 64 concurrent callers; an 8 MB numpy array round trip (bytes without numpy); a stream of
100 000 small chunks (a peer too slow to stream them in ``stream_cap`` seconds gets streams of
as many chunks as a warm-up stream says fit in that time; the table says so);
startup of 16 and 100 workers, spawned and with ``preload=True`` (the
zygote); idle memory per worker (PSS/USS of the 16-worker pools); fairness (8 workers x 20
concurrent 0.5 s sleeps); telemetry overhead (paired runs, benchlib.telemetry_pairs); one
worker process from spawn to ready with its imports before ready, and ``import snakepit``
beside the peers' library imports (``-X importtime``, importtime.py); and workers on a second
(loopback) Ray node against local gRPC workers (benchmarks/ray_bench.py, its own table: ping
p50, ping throughput, startup of 8 workers, cleanup after a host kill -9).

Every number is the median of ``--reps`` repetitions with min-max. A repetition is one
measurement on an already running pool or executor (warmed up), except for startup, where each
repetition starts a fresh pool. Stdout: machine facts, then the table (progress goes to stderr).
JSON with every repetition's value (and every latency sample):
benchmarks/results/run_all-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import inspect
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import psutil
import trio

import snakepit
from benchlib import drive, pool_config, stop_process, summary, telemetry_pairs
from importtime import library_import_ms, worker_start
import cpu_per_call  # noqa: E402
import floors  # noqa: E402
import map_bench  # noqa: E402

try:
    import numpy as np
except ImportError:  # the 8 MB round trip then sends bytes
    np = None

HERE = Path(__file__).resolve().parent
MB = 2**20
PIPE, GRPC = "snakepit/pipe", "snakepit/grpc"
PPE, MP = "ProcessPoolExecutor", "multiprocessing.Pool"
BARE, FLOOR = "bare grpcio (trio)", "raw pipe echo (floor)"
PEERS = [PIPE, GRPC, PPE, MP, BARE, FLOOR]
SHORT = {PIPE: "pipe", GRPC: "grpc", PPE: "PPE", MP: "mp", BARE: "bare", FLOOR: "floor"}
TRANSPORTS = {"pipe": PIPE, "grpc": GRPC}
WORKERS, CALLERS = (2, 4), (1, 8, 64)
START = time.perf_counter()
Submit = Callable[..., "concurrent.futures.Future[Any]"]


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f} s] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Params:
    reps: int = 5
    window: float = 0.4               # seconds per throughput measurement
    n_lat: int = 1000                 # sequential pings per latency repetition
    chunks: int = 100_000
    # (workers, mode, transports). 100 spawned workers on pipe only: 100 spawned grpc workers
    # would add ~2 min (5 x 20 s)
    startup: tuple[tuple[int, str, tuple[str, ...]], ...] = (
        (16, "spawned", ("pipe", "grpc")), (16, "preload", ("pipe", "grpc")),
        (100, "spawned", ("pipe",)), (100, "preload", ("pipe", "grpc")))
    mem_workers: int = 16             # idle memory is read in the pools of this size
    telemetry_window: float = 2.0     # seconds per telemetry measurement (one of a pair)
    stream_cap: float = 5.0           # seconds per stream repetition, about (see above)
    mb: int = 8
    bytes_calls: int = 3              # 8 MB round trips per repetition
    map_items: int = 100_000          # items of one map (benchmarks/map_bench.py)


QUICK = Params(reps=2, window=0.25, n_lat=300, chunks=20_000,
               startup=((16, "spawned", ("pipe", "grpc")), (16, "preload", ("pipe", "grpc"))),
               telemetry_window=0.3, stream_cap=2.0, map_items=20_000)


# -- results ---------------------------------------------------------------------------------
@dataclass
class Results:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency_samples_ms: dict[str, list[list[float]]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    sections: dict[str, dict[str, float]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)   # a section's own table (ray)

    def put(self, row: str, peer: str, values: list[float]) -> None:
        self.rows.setdefault(row, {})[peer] = summary(values)
        log(f"  {row:<22} {SHORT[peer]:<5} median {statistics.median(values):.4g}")

    def note(self, rows: list[str], peer: str, text: str) -> None:
        for row in rows:
            self.rows.setdefault(row, {}).setdefault(peer, {"note": text})

    def median(self, row: str, peer: str) -> float | None:
        return self.rows.get(row, {}).get(peer, {}).get("median")


@contextlib.contextmanager
def guard(res: Results, peer: str, rows: list[str]) -> Iterator[None]:
    """A failing peer/workload is recorded (its rows say "error") and the run goes on."""
    try:
        yield
    except Exception as exc:
        traceback.print_exc()
        log(f"  {peer}: {type(exc).__name__}: {exc}")
        res.errors.append({"peer": peer, "rows": ",".join(rows),
                           "error": f"{type(exc).__name__}: {exc}"})
        res.note(rows, peer, f"error ({type(exc).__name__})")


# -- the peers: ping() and echo(x) return a value or an awaitable; stream(n) or None ----------
def ping() -> dict[str, str]:
    return {"status": "pong"}


def echo(x: Any) -> Any:
    return x


class SnakepitPeer:
    def __init__(self, app: Any) -> None:
        self.app = app

    def ping(self) -> Any:
        return self.app.execute("ping")

    def echo(self, x: Any) -> Any:
        return self.app.execute("echo", {"x": x})

    def stream(self, n: int) -> Any:
        return self.app.stream("ping_stream", {"count": n})


def snakepit_peer(transport: str) -> Callable[[int], Any]:
    """Opens a pool of ``workers`` on this transport (an async context manager)."""
    @contextlib.asynccontextmanager
    async def open_peer(workers: int) -> AsyncIterator[SnakepitPeer]:
        async with snakepit.start(pool_config(workers, transport)) as app:
            yield SnakepitPeer(app)
    return open_peer


class SyncPeer:
    """An executor's ``submit`` (ProcessPoolExecutor, or multiprocessing.Pool wrapped)."""
    stream = None

    def __init__(self, submit: Submit) -> None:
        self.submit = submit

    def ping(self) -> Any:
        return self.submit(ping).result()

    def echo(self, x: Any) -> Any:
        return self.submit(echo, x).result()


@contextlib.contextmanager
def ppe(workers: int) -> Iterator[Submit]:
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        yield ex.submit


@contextlib.contextmanager
def mp_pool(workers: int) -> Iterator[Submit]:
    with multiprocessing.Pool(workers) as pool:
        def submit(fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
            fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            pool.apply_async(fn, args, callback=fut.set_result, error_callback=fut.set_exception)
            return fut
        yield submit


SECRET = "bench"


class BarePeer:
    """Bare grpcio from trio (cpu_per_call.BareGrpc: the generated stub, a future whose
    callback wakes the task, a stream read by a thread) to showcase worker processes; no
    snakepit on the host. Calls go round robin."""

    def __init__(self, clients: list[Any]) -> None:
        from snakepit_bridge import serialization
        from snakepit_bridge.proto import bridge_pb2
        self._encode, self._pb = serialization.encode, bridge_pb2
        self._first, self._next = clients[0], itertools.cycle(clients)

    def _request(self, tool: str, args: dict[str, Any]) -> Any:
        data, blobs = self._encode(args)
        return self._pb.ExecuteRequest(tool=tool, args_json=data, blobs=blobs)

    async def call(self, tool: str, args: dict[str, Any]) -> Any:
        resp = await next(self._next).execute(self._request(tool, args))
        if not resp.success:
            raise RuntimeError(f"{tool} failed: {resp.error.message}")
        return resp

    def ping(self) -> Any:
        return self.call("ping", {})

    def echo(self, x: Any) -> Any:
        return self.call("echo", {"x": x})

    def stream(self, n: int) -> Any:
        return self._first.stream(self._request("ping_stream", {"count": n}))


def spawn_bare_worker(procs: list[subprocess.Popen[bytes]]) -> int:
    """Start one showcase worker serving gRPC; returns the fd its ready line arrives on."""
    r, w = os.pipe()
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "snakepit_bridge", "--adapter",
             "snakepit_bridge.adapters.showcase:ShowcaseAdapter", "--ready-fd", str(w),
             "--heartbeat-timeout", "0", "--log-level", "warning"],
            pass_fds=(w,), stdin=subprocess.PIPE, env=dict(os.environ, SNAKEPIT_SECRET=SECRET)))
    finally:
        os.close(w)
    return r


def ready_port(r: int) -> int:
    try:
        data = os.read(r, 4096)
    finally:
        os.close(r)
    if not data:
        raise RuntimeError("a bare grpc worker exited before reporting ready")
    return int(json.loads(data)["port"])


@contextlib.asynccontextmanager
async def bare_peer(workers: int) -> AsyncIterator[BarePeer]:
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as clients:
        try:
            fds = [spawn_bare_worker(procs) for _ in range(workers)]
            bare = []
            for r in fds:
                port = await trio.to_thread.run_sync(ready_port, r)
                bare.append(clients.enter_context(
                    cpu_per_call.BareGrpc(f"127.0.0.1:{port}", SECRET)))
            yield BarePeer(bare)
        finally:
            clients.close()
            for proc in procs:
                stop_process(proc)


ECHO = r"""
import os, struct, sys
r, w = int(sys.argv[1]), int(sys.argv[2])
buf = bytearray()
while True:
    data = os.read(r, 1 << 20)
    if not data:
        break
    buf += data
    while len(buf) >= 4:
        end = 4 + struct.unpack_from("<I", buf)[0]
        if len(buf) < end:
            break
        frame = bytes(buf[:end])
        del buf[:end]
        while frame:
            frame = frame[os.write(w, frame):]
"""
FRAME = struct.Struct("<I")


class PipeEcho:
    """Length-prefixed frames over a pipe pair to an echo process: the floor."""
    stream = None
    SMALL = b"x" * 16

    def __init__(self, out: Any, inp: Any) -> None:
        self.out, self.inp = out, inp

    async def roundtrip(self, payload: Any) -> None:
        view = memoryview(payload).cast("B")
        await self.out.send_all(FRAME.pack(len(view)) + view.tobytes())
        need = FRAME.size + len(view)
        while need:
            data = await self.inp.receive_some(min(need, 1 << 20))
            if not data:
                raise RuntimeError("the echo process closed its pipe")
            need -= len(data)

    def ping(self) -> Any:
        return self.roundtrip(self.SMALL)

    def echo(self, x: Any) -> Any:
        return self.roundtrip(x)


@contextlib.asynccontextmanager
async def pipe_echo(workers: int = 1) -> AsyncIterator[PipeEcho]:
    """One echo process (``workers`` is 1: the floor is measured on one worker only)."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", ECHO, str(to_child_r), str(from_child_w)],
                            pass_fds=(to_child_r, from_child_w))
    os.close(to_child_r)
    os.close(from_child_w)
    out, inp = trio.lowlevel.FdStream(to_child_w), trio.lowlevel.FdStream(from_child_r)
    try:
        yield PipeEcho(out, inp)
    finally:
        with trio.CancelScope(shield=True):
            await out.aclose()
            await inp.aclose()
        stop_process(proc)


# -- workloads -------------------------------------------------------------------------------
async def timed(call: Callable[[], Any], n: int, warm: int = 0) -> list[float]:
    """Seconds of each of ``n`` sequential calls after ``warm`` ones (sync or async calls)."""
    out = []
    for i in range(warm + n):
        t = time.perf_counter()
        result = call()
        if inspect.isawaitable(result):
            await result
        if i >= warm:
            out.append(time.perf_counter() - t)
    return out


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e3


def payload(mb: int) -> Any:
    if np is None:
        return os.urandom(mb * MB)
    return np.random.default_rng(0).random(mb * MB // 8)


async def stream_rate(peer: Any, n: int) -> float:
    """Chunks/s of an ``n``-chunk stream into this trio task."""
    count = 0
    t = time.perf_counter()
    async with peer.stream(n) as chunks:
        async for _ in chunks:
            count += 1
    elapsed = time.perf_counter() - t
    if count < n:
        raise RuntimeError(f"the stream ended after {count} of {n} chunks")
    return count / elapsed


async def stream_length(peer: Any, p: Params) -> int:
    """``p.chunks``, or fewer: what a 2000-chunk warm-up stream says fits in ``stream_cap`` s.
    (Streams always run to their end: leaving one early is a different workload.)"""
    rate = await stream_rate(peer, 2000)
    return min(p.chunks, max(2000, int(rate * p.stream_cap)))


ONE_WORKER_ROWS = ["latency_p50", "latency_p99", "bytes", "stream"]


async def on_one_worker(name: str, open_peer: Callable[[int], Any], p: Params,
                        res: Results) -> None:
    async with open_peer(1) as peer:
        await one_worker(name, peer, p, res)


async def one_worker(name: str, peer: Any, p: Params, res: Results) -> None:
    """Sequential ping latency, the 8 MB round trip and the stream, on one worker."""
    runs = [await timed(peer.ping, p.n_lat, warm=100) for _ in range(p.reps)]
    res.latency_samples_ms[name] = [[round(s * 1e3, 4) for s in r] for r in runs]
    res.put("latency_p50", name, [pct(r, 0.5) for r in runs])
    res.put("latency_p99", name, [pct(r, 0.99) for r in runs])
    data = payload(p.mb)
    res.put("bytes", name, [p.mb * p.bytes_calls / sum(await timed(
        lambda: peer.echo(data), p.bytes_calls, warm=1)) for _ in range(p.reps)])
    if peer.stream is not None:
        n = await stream_length(peer, p)
        res.put("stream", name, [await stream_rate(peer, n) for _ in range(p.reps)])
        res.rows["stream"][name].update(chunks=n, of_chunks=p.chunks)


def tp_row(workers: int, callers: int) -> str:
    return f"tp_{workers}w_{callers}c"


TP_ROWS = [tp_row(w, c) for w in WORKERS for c in CALLERS]


async def async_throughput(name: str, open_peer: Callable[[int], Any], p: Params,
                           res: Results) -> None:
    """Ping calls/s of trio tasks calling one peer concurrently."""
    for workers in WORKERS:
        async with open_peer(workers) as peer:
            await peer.ping()
            for callers in CALLERS:
                res.put(tp_row(workers, callers), name,
                        [await drive(peer.ping, callers, p.window) for _ in range(p.reps)])


def sync_drive(submit: Submit, callers: int, seconds: float) -> float:
    """Calls/s with ``callers`` pings always outstanding (the executor's own way)."""
    done = 0
    t = time.perf_counter()
    pending = {submit(ping) for _ in range(callers)}
    while time.perf_counter() - t < seconds:
        finished, pending = concurrent.futures.wait(
            pending, return_when=concurrent.futures.FIRST_COMPLETED)
        done += len(finished)
        pending |= {submit(ping) for _ in finished}
    elapsed = time.perf_counter() - t
    concurrent.futures.wait(pending)
    return done / elapsed


def sync_throughput(name: str, executor: Callable[[int], Any], p: Params, res: Results) -> None:
    for workers in WORKERS:
        with executor(workers) as submit:
            submit(ping).result()
            for callers in CALLERS:
                res.put(tp_row(workers, callers), name,
                        [sync_drive(submit, callers, p.window) for _ in range(p.reps)])


async def fairness(app: Any) -> float:
    """Wall time of 20 concurrent 0.5 s sleeps on 8 workers (ideal: 3 rounds, 1.5 s)."""
    t = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(app.execute, "sleep", {"seconds": 0.5})
    return time.perf_counter() - t


IMPORT_ROWS = ["worker_ready_ms", "worker_imports_ms", "library_import_ms"]
EXTRA_ROWS = ["telemetry_none", "telemetry_handler", "telemetry_overhead", "fairness"]


async def snakepit_extras(transport: str, p: Params, res: Results) -> None:
    """Telemetry overhead (2 workers, 16 callers, paired) and fairness (8 workers)."""
    name = TRANSPORTS[transport]
    async with snakepit.start(pool_config(2, transport)) as app:
        pairs = await telemetry_pairs(app, 16, p.telemetry_window, p.reps)
    res.put("telemetry_none", name, pairs["no_handler"])
    res.put("telemetry_handler", name, pairs["handler"])
    res.put("telemetry_overhead", name, [100 * (1 - h / n) for n, h in
                                         zip(pairs["no_handler"], pairs["handler"])])
    async with snakepit.start(pool_config(8, transport)) as app:
        await app.execute("ping")
        res.put("fairness", name, [await fairness(app) for _ in range(p.reps)])


# -- startup and memory ----------------------------------------------------------------------
def memory_of(pids: list[int]) -> tuple[float, float]:
    """Median PSS and USS (MB) of these processes."""
    infos = [psutil.Process(pid).memory_full_info() for pid in pids]
    return (statistics.median(getattr(i, "pss", i.uss) for i in infos) / MB,
            statistics.median(i.uss for i in infos) / MB)


# issue 14's targets on a 2-core machine: seconds until all workers are ready, idle PSS in MB
STARTUP_TARGETS = {(16, "spawned"): 1.2, (100, "spawned"): 6.0, (100, "preload"): 1.0}
PSS_TARGETS = {"spawned": 15.0, "preload": 6.0}


def preload_kw(mode: str) -> dict[str, Any]:
    return {"preload": True} if mode == "preload" else {}


async def startup_once(n: int, transport: str, mode: str, with_memory: bool
                       ) -> tuple[float, tuple[float, float] | None]:
    """Seconds from start until all ``n`` workers are ready (and their idle memory)."""
    cfg = pool_config(n, transport, **preload_kw(mode))
    t = time.perf_counter()
    async with snakepit.start(cfg) as app:
        elapsed = time.perf_counter() - t
        memory = None
        if with_memory:
            await trio.sleep(0.2)
            memory = memory_of([w["pid"] for w in app.workers()])
    return elapsed, memory


def startup_variant(n: int, transport: str, mode: str, p: Params, res: Results) -> None:
    name, rows = TRANSPORTS[transport], [f"startup_{n}_{mode}"]
    with_memory = n == p.mem_workers
    if with_memory:
        rows += [f"pss_{mode}", f"uss_{mode}"]
    with guard(res, name, rows):
        runs = [run_trio(startup_once, n, transport, mode, with_memory) for _ in range(p.reps)]
        res.put(rows[0], name, [r[0] for r in runs])
        memory = [m for _, m in runs if m is not None]
        if memory:
            res.put(rows[1], name, [pss for pss, _ in memory])
            res.put(rows[2], name, [uss for _, uss in memory])


def ppe_memory(workers: int) -> tuple[float, float]:
    before = {c.pid for c in psutil.Process().children()}
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        list(ex.map(time.sleep, [0.05] * workers))
        time.sleep(0.2)
        pids = [c.pid for c in psutil.Process().children() if c.pid not in before]
        return memory_of(pids)


# -- sections: one per peer ------------------------------------------------------------------
HANG_LIMIT = 300.0   # seconds: a trio run that takes longer is stuck; it is recorded as an error


def run_trio(fn: Callable[..., Any], *args: Any) -> Any:
    async def limited() -> Any:
        with trio.fail_after(HANG_LIMIT):
            return await fn(*args)
    return trio.run(limited)


def section_async(name: str, open_peer: Callable[[int], Any], p: Params, res: Results,
                  throughput: bool = True) -> None:
    with guard(res, name, ONE_WORKER_ROWS):
        run_trio(on_one_worker, name, open_peer, p, res)
    if throughput:
        with guard(res, name, TP_ROWS):
            run_trio(async_throughput, name, open_peer, p, res)


def section_snakepit(transport: str, p: Params, res: Results) -> None:
    name = TRANSPORTS[transport]
    section_async(name, snakepit_peer(transport), p, res)
    with guard(res, name, EXTRA_ROWS):
        run_trio(snakepit_extras, transport, p, res)


def section_executor(name: str, executor: Callable[[int], Any], p: Params, res: Results) -> None:
    with guard(res, name, ONE_WORKER_ROWS), executor(1) as submit:
        run_trio(one_worker, name, SyncPeer(submit), p, res)
    with guard(res, name, TP_ROWS):
        sync_throughput(name, executor, p, res)


def section_ppe(p: Params, res: Results) -> None:
    section_executor(PPE, ppe, p, res)
    with guard(res, PPE, ["pss_spawned", "uss_spawned"]):
        runs = [ppe_memory(p.mem_workers) for _ in range(p.reps)]
        res.put("pss_spawned", PPE, [r[0] for r in runs])
        res.put("uss_spawned", PPE, [r[1] for r in runs])


def section_startup(p: Params, res: Results) -> None:
    for n, mode, transports in p.startup:
        for transport in transports:
            startup_variant(n, transport, mode, p, res)


def section_ray(p: Params, res: Results) -> None:
    """benchmarks/ray_bench.py in its own process (its own Ray cluster): its table is printed
    after this one; skipped, with the reason, where Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        res.tables["ray"] = f"Ray placement: not measured (pip install 'snakepit[ray]': {exc})"
        return
    out = HERE / "results" / f"ray_bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    argv = [sys.executable, str(HERE / "ray_bench.py"), "--reps", str(p.reps), "--json",
            str(out)] + (["--quick"] if p.n_lat == QUICK.n_lat else [])
    done = subprocess.run(argv, cwd=HERE, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        res.errors.append({"peer": "ray", "rows": "ray", "error": f"exit {done.returncode}"})
    res.tables["ray"] = done.stdout.strip()


# what a user imports to get each peer's pool (snakepit: any transport, shown under pipe)
LIBRARY_IMPORTS = {PIPE: "import snakepit",
                   PPE: "from concurrent.futures import ProcessPoolExecutor",
                   MP: "import multiprocessing.pool", BARE: "import grpc"}


def section_imports(p: Params, res: Results) -> None:
    """One worker process from spawn to ready (and its imports before ready), and the import
    of each peer's library, interleaved per repetition (benchmarks/importtime.py)."""
    starts = {PIPE: "pipe", GRPC: "grpc", FLOOR: "floor"}
    with guard(res, PIPE, IMPORT_ROWS):
        runs = [({peer: worker_start(how) for peer, how in starts.items()},
                 {peer: library_import_ms(stmt) for peer, stmt in LIBRARY_IMPORTS.items()})
                for _ in range(p.reps)]
        for peer in starts:
            res.put("worker_ready_ms", peer, [w[peer][0] for w, _ in runs])
            res.put("worker_imports_ms", peer, [w[peer][1] for w, _ in runs])
        for peer in LIBRARY_IMPORTS:
            res.put("library_import_ms", peer, [lib[peer] for _, lib in runs])


CPU_ROWS = ["cpu_host_us", "cpu_worker_us"]


def section_cpu(p: Params, res: Results) -> None:
    """Process CPU time per call (psutil user+system) of the caller and of the one worker,
    sequential `add`: snakepit over each transport, a bare grpcio client driven from trio on
    the gRPC pool's own worker, and ProcessPoolExecutor, interleaved per repetition
    (benchmarks/cpu_per_call.py)."""
    calls = 3000 if p.n_lat != QUICK.n_lat else 1000
    # the bare grpcio client (trio) runs on the gRPC pool's worker, right after the pool
    runs = {PIPE: lambda: {PIPE: cpu_per_call.snakepit_row("pipe", calls)},
            GRPC: lambda: {peer: row for peer, row in cpu_per_call.grpc_rows(calls).items()
                           if peer in (GRPC, cpu_per_call.BARE_TRIO)},
            PPE: lambda: {PPE: cpu_per_call.ppe_row(calls)}}
    with guard(res, PIPE, CPU_ROWS):
        got: dict[str, list[dict[str, float]]] = {PIPE: [], GRPC: [], BARE: [], PPE: []}
        for _ in range(p.reps):
            for run in runs.values():
                for peer, row in run().items():
                    got[BARE if peer == cpu_per_call.BARE_TRIO else peer].append(row)
        for peer, samples in got.items():
            res.put("cpu_host_us", peer, [r["host_us"] for r in samples])
            res.put("cpu_worker_us", peer, [r["worker_us"] for r in samples])


# (workers, callers, pipeline depth): depth 1 is the cautious setting (one request waits in a
# busy worker); a deep pipeline is what short calls from many callers want
PIPELINED = [(2, 1, 1), (2, 64, 1), (2, 64, 16)]


def tpp_row(workers: int, callers: int, depth: int) -> str:
    return f"tpp_{workers}w_{callers}c_p{depth}"


async def pipelined_throughput(p: Params, res: Results) -> None:
    """Ping calls/s of snakepit/pipe with ``pipeline=N`` (up to N requests wait in a busy
    worker), beside PPE's figures of the same run (section ``ppe`` first)."""
    for depth in sorted({d for _, _, d in PIPELINED}):
        async with snakepit.start(pool_config(2, "pipe", pipeline=depth)) as app:
            peer = SnakepitPeer(app)
            await peer.ping()
            for workers, callers, d in PIPELINED:
                if d != depth:
                    continue
                row = tpp_row(workers, callers, depth)
                res.put(row, PIPE,
                        [await drive(peer.ping, callers, p.window) for _ in range(p.reps)])
                ppe_row = res.rows.get(tp_row(workers, callers), {}).get(PPE)
                if ppe_row is not None:
                    res.rows[row][PPE] = ppe_row


def section_pipelined(p: Params, res: Results) -> None:
    with guard(res, PIPE, [tpp_row(w, c, d) for w, c, d in PIPELINED]):
        run_trio(pipelined_throughput, p, res)


def section_map(p: Params, res: Results) -> None:
    """100 000 `add` items: app.map (pipe, pipeline=1) against multiprocessing.Pool.imap at
    its best chunk size and ProcessPoolExecutor.map(chunksize=1) (benchmarks/map_bench.py)."""
    with guard(res, PIPE, ["map_items"]):
        res.put("map_items", PIPE, [map_bench.snakepit_map(p.map_items)
                                     for _ in range(p.reps)])
    with guard(res, MP, ["map_items"]):
        runs = [map_bench.mp_imap(p.map_items) for _ in range(p.reps)]
        res.put("map_items", MP, [rate for rate, _ in runs])
        res.rows["map_items"][MP]["chunksize"] = [size for _, size in runs]
    with guard(res, PPE, ["map_items"]):
        res.put("map_items", PPE, [map_bench.ppe_map(p.map_items) for _ in range(p.reps)])


def section_floors(p: Params, res: Results) -> None:
    """What the machine and the `map` API cost before snakepit does anything
    (benchmarks/floors.py): its own table after this one; the samples in the JSON."""
    samples = floors.measure(p.reps, p.map_items)
    for key, values in samples.items():
        res.put(f"floors_{key}", FLOOR, values)
    res.tables["floors"] = floors.render(samples)


SECTIONS: dict[str, Callable[[Params, Results], None]] = {
    "floor": lambda p, res: section_async(FLOOR, pipe_echo, p, res, throughput=False),
    "pipe": lambda p, res: section_snakepit("pipe", p, res),
    "grpc": lambda p, res: section_snakepit("grpc", p, res),
    "ppe": section_ppe,
    "mp": lambda p, res: section_executor(MP, mp_pool, p, res),
    "bare": lambda p, res: section_async(BARE, bare_peer, p, res),
    "pipelined": section_pipelined,
    "map": section_map,
    "startup": section_startup,
    "imports": section_imports,
    "cpu": section_cpu,
    "floors": section_floors,
    "ray": section_ray,
}


# -- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    text: str                 # e.g. "pipe/PPE >= 3"
    peer: str
    op: str                   # "<=", ">=" or "<"
    bound: float
    over: str | None = None   # a ratio to this peer, else the value itself
    fmt: str = ".2f"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    fmt: str
    ratios: tuple[tuple[str, str | float], ...] = ()   # (peer, peer or a number)
    targets: tuple[Target, ...] = ()


VS_PPE = ((PIPE, PPE), (GRPC, PPE))
VS_FLOOR = ((PIPE, FLOOR), (GRPC, FLOOR))
OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b}


def both(text: str, op: str, bound: float, fmt: str = ".2f") -> tuple[Target, ...]:
    return tuple(Target(f"{SHORT[peer]} {text}", peer, op, bound, fmt=fmt)
                 for peer in (PIPE, GRPC))


def rows(p: Params) -> list[Row]:
    out = [
        Row("latency_p50", "ping latency p50, ms (1 worker)", ".3f", VS_PPE + VS_FLOOR,
            (Target("pipe/PPE <= 1", PIPE, "<=", 1.0, over=PPE),)),
        Row("latency_p99", "ping latency p99, ms (1 worker)", ".3f", VS_PPE + VS_FLOOR,
            (Target("pipe <= 1.2 ms", PIPE, "<=", 1.2, fmt=".3f"),
             Target("grpc <= 1.5 ms", GRPC, "<=", 1.5, fmt=".3f")))]
    for w, c in itertools.product(WORKERS, CALLERS):
        targets = (Target("pipe/PPE >= 3", PIPE, ">=", 3.0, over=PPE),
                   Target("grpc/bare >= 0.9", GRPC, ">=", 0.9, over=BARE)) \
            if (w, c) == (2, 64) else ()
        out.append(Row(tp_row(w, c), f"ping calls/s, {w} workers, {c} caller{'s' * (c > 1)}", ".0f",
                       VS_PPE + ((GRPC, BARE),), targets))
    for w, c, d in PIPELINED:
        bound = 3.0 if c == 64 else 1.5
        out.append(Row(tpp_row(w, c, d), f"ping calls/s, {w} workers, {c} caller{'s' * (c > 1)}, "
                       f"pipe with pipeline={d} (PPE as above)", ".0f", ((PIPE, PPE),),
                       (Target(f"pipe/PPE >= {bound:g}", PIPE, ">=", bound, over=PPE),)))
    out.append(Row("map_items", f"map of {p.map_items} `add` items, items/s (2 workers; mp: "
                   "imap at its best chunk size; PPE: map(chunksize=1) of <= 20000)", ".0f",
                   ((PIPE, MP), (PIPE, PPE)),
                   (Target("pipe/mp.imap >= 2", PIPE, ">=", 2.0, over=MP),
                    Target("pipe/PPE.map(1) >= 10", PIPE, ">=", 10.0, over=PPE))))
    what = "numpy array" if np is not None else "bytes"
    out += [
        Row("bytes", f"{p.mb} MB {what} round trip, MB/s (1 worker)", ".0f",
            VS_PPE + ((PIPE, FLOOR),), (Target("pipe/PPE >= 2", PIPE, ">=", 2.0, over=PPE),)),
        Row("stream", f"{p.chunks}-chunk stream into trio, chunks/s (cap {p.stream_cap:g} s)",
            ".0f",
            ((PIPE, GRPC), (GRPC, BARE)),
            (Target("pipe >= 200000/s", PIPE, ">=", 200_000, fmt=".0f"),
             Target("grpc/bare >= 0.9", GRPC, ">=", 0.9, over=BARE)))]
    for n, mode, transports in p.startup:
        bound = STARTUP_TARGETS.get((n, mode))
        what = "preload=True" if mode == "preload" else mode
        out.append(Row(f"startup_{n}_{mode}", f"{n} workers ready, s ({what})", ".2f",
                       targets=() if bound is None else tuple(
                           Target(f"{SHORT[TRANSPORTS[t]]} <= {bound:g} s", TRANSPORTS[t], "<=",
                                  bound) for t in transports)))
    out += [
        Row("cpu_host_us", "caller CPU per sequential `add`, µs (psutil, 1 worker; bare: "
            "the gRPC pool's worker)", ".0f", VS_PPE + ((GRPC, BARE),),
            (Target("pipe <= 80 µs", PIPE, "<=", 80.0, fmt=".0f"),
             Target("grpc/bare <= 1.1", GRPC, "<=", 1.1, over=BARE))),
        Row("cpu_worker_us", "worker CPU per sequential `add`, µs (psutil)", ".0f",
            VS_PPE + ((GRPC, BARE),),
            (Target("pipe <= 50 µs", PIPE, "<=", 50.0, fmt=".0f"),
             Target("grpc/bare <= 1.1", GRPC, "<=", 1.1, over=BARE)))]
    out += [
        Row("worker_ready_ms", "one worker process ready, ms (showcase; floor: an interpreter "
            "that reports ready at once)", ".0f", VS_FLOOR),
        Row("worker_imports_ms", "its imports before ready, ms (-X importtime, top level)",
            ".0f", VS_FLOOR),
        Row("library_import_ms", "library import, ms (-X importtime): `import snakepit` "
            "(under pipe), concurrent.futures, multiprocessing.pool, grpc", ".1f",
            ((PIPE, PPE), (PIPE, MP)))]
    n = p.mem_workers
    for kind in ("pss", "uss"):
        out += [Row(f"{kind}_spawned", f"idle worker {kind.upper()}, MB ({n} workers; "
                    f"PPE: {multiprocessing.get_start_method()})", ".1f", VS_PPE,
                    both(f"<= {PSS_TARGETS['spawned']:g} MB", "<=", PSS_TARGETS["spawned"],
                         ".1f") if kind == "pss" else ()),
                Row(f"{kind}_preload", f"idle worker {kind.upper()}, MB ({n} workers, "
                    f"preload=True)", ".1f", VS_PPE,
                    both(f"<= {PSS_TARGETS['preload']:g} MB", "<=", PSS_TARGETS["preload"],
                         ".1f") if kind == "pss" else ())]
    out += [
        Row("fairness", "8 workers x 20 x 0.5 s sleeps, s (ideal 1.5)", ".3f",
            ((PIPE, 1.5), (GRPC, 1.5))),
        Row("telemetry_none", "ping calls/s, 2 workers, 16 callers, no telemetry handler",
            ".0f"),
        Row("telemetry_handler", "same, a handler on every request event", ".0f"),
        Row("telemetry_overhead", "telemetry overhead, % (1 - handler/none, paired)", ".1f",
            targets=both("< 5 %", "<", 5.0, ".1f"))]
    return out


def cell(res: Results, row: Row, peer: str) -> str:
    v = res.rows.get(row.key, {}).get(peer)
    if v is None:
        return ""
    if "note" in v:
        return v["note"]
    f = row.fmt
    text = f"{v['median']:{f}} ({v['min']:{f}}–{v['max']:{f}})"
    if v.get("chunks", 0) < v.get("of_chunks", 0):
        text += f"; {v['chunks']}-chunk streams (time cap)"
    return text


def ratio(res: Results, row: Row, a: str, b: str | float) -> tuple[str, float] | None:
    num = res.median(row.key, a)
    den = b if isinstance(b, float) else res.median(row.key, b)
    if num is None or not den:
        return None
    return f"{SHORT[a]}/{'ideal' if isinstance(b, float) else SHORT[b]}", num / den


def ratios_cell(res: Results, row: Row) -> str:
    found = [ratio(res, row, a, b) for a, b in row.ratios]
    return ", ".join(f"{name} {value:.2f}" for name, value in filter(None, found))


def target_value(res: Results, row: Row, t: Target) -> float | None:
    if t.over is not None:
        found = ratio(res, row, t.peer, t.over)
        return None if found is None else found[1]
    return res.median(row.key, t.peer)


def targets_cell(res: Results, row: Row) -> str:
    parts = []
    for t in row.targets:
        if t.peer not in res.rows.get(row.key, {}):
            continue   # not measured in this run
        value = target_value(res, row, t)
        if value is None:
            parts.append(f"{t.text}: n/a")
        else:
            parts.append(f"{t.text}: {value:{t.fmt}} {'✓' if OPS[t.op](value, t.bound) else '✗'}")
    return "; ".join(parts)


def table(res: Results, p: Params) -> str:
    lines = ["| workload | " + " | ".join(PEERS) + " | ratios (of medians) | target: measured |",
             "| --- |" + " ---: |" * len(PEERS) + " --- | --- |"]
    for row in rows(p):
        if row.key in res.rows:
            cells = [row.label, *(cell(res, row, peer) for peer in PEERS),
                     ratios_cell(res, row), targets_cell(res, row)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"],
                         check=False, capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0],
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "numpy": np.__version__ if np is not None else None,
            "mp_start_method": multiprocessing.get_start_method(), "snakepit_git": git}


def header(m: dict[str, Any], p: Params) -> str:
    return (f"# snakepit benchmarks (benchmarks/run_all.py), {m['date']}\n\n"
            f"- machine: {m['cpus']} CPUs, {m['cpu_model']}, {m['memory_gb']} GB, "
            f"{m['platform']}, load average at start {m['load_avg']}\n"
            f"- Python {m['python']} ({m['implementation']}), numpy {m['numpy']}, "
            f"multiprocessing start method {m['mp_start_method']}, snakepit {m['snakepit_git']}\n"
            f"- medians of {p.reps} repetitions (min–max); throughput windows {p.window} s "
            f"(telemetry {p.telemetry_window} s), {p.n_lat} pings per latency repetition, "
            f"{p.chunks}-chunk streams (cap {p.stream_cap:g} s each); startup and memory: a "
            f"fresh pool per repetition\n")


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) CPU ticks since boot: steal is time the hypervisor gave elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def run_section(name: str, p: Params, res: Results) -> None:
    log(f"{name} ...")
    t, (steal, total) = time.perf_counter(), cpu_ticks()
    try:
        SECTIONS[name](p, res)
    finally:
        steal2, total2 = cpu_ticks()
        res.sections[name] = {"seconds": round(time.perf_counter() - t, 1), "cpu_steal_pct":
                              round(100 * (steal2 - steal) / max(1, total2 - total), 1)}


def leftovers() -> list[str]:
    """Child processes still alive at the end (there should be none): reported and stopped."""
    kids = [c for c in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(c.cmdline())]
    for kid in kids:
        kid.terminate()
    psutil.wait_procs(kids, timeout=5)
    return [f"{c.pid}: {' '.join(c.cmdline())[:120]}" for c in kids]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5; quick 2)")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter runs (a smoke test)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    args = ap.parse_args()
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    p = QUICK if args.quick else Params()
    if args.reps is not None:
        p = Params(**{**asdict(p), "reps": args.reps})
    res = Results()
    facts = machine()
    print(header(facts, p), flush=True)
    try:
        for name in args.only.split(","):
            run_section(name, p, res)
    finally:
        left = leftovers()
        if left:
            log(f"WARNING: {len(left)} child process(es) were still running: {left}")
        report = "\n\n".join([table(res, p), *res.tables.values()])
        print(report)
        out = HERE / "results" / f"run_all-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({
            "machine": facts, "params": asdict(p), "rows": res.rows, "errors": res.errors,
            "sections": res.sections, "total_s": round(time.perf_counter() - START, 1),
            "leftover_processes": left, "table": report,
            "latency_samples_ms": res.latency_samples_ms}, indent=1))
        spent = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in res.sections.items())
        steal = max((v["cpu_steal_pct"] for v in res.sections.values()), default=0.0)
        print(f"\nsections: {spent}; total {time.perf_counter() - START:.0f} s; CPU steal "
              f"at most {steal} % in a section\nraw numbers: {out}")


if __name__ == "__main__":
    main()
