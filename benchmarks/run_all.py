"""snakepit against its peers, same machine, same run: prints tables, writes JSON.

    python benchmarks/run_all.py [--reps 5] [--quick]

Peers: snakepit over both transports (pipe and grpc), concurrent.futures.ProcessPoolExecutor, multiprocessing.Pool,
a bare grpcio client driven from trio (the same worker process and proto, no pool), and a raw
length-prefixed pipe echo from trio (the floor). Medians of ``--reps`` repetitions with min-max.
Results: benchmarks/results/run_all.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import psutil
import trio

import snakepit

STATE = "/tmp/snakepit-bench"


def ping() -> dict[str, str]:
    return {"status": "pong"}


def echo(x: Any) -> Any:
    return x


def config(size: int, transport: str = "grpc") -> snakepit.Config:
    return snakepit.Config(state_dir=STATE, log_level="warning", pools=[
        snakepit.PoolConfig(name="default", size=size, startup_batch_size=max(8, size),
                            transport=transport)])


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# -- 1. sequential latency -------------------------------------------------------------------
async def snakepit_latency(n: int, transport: str = "grpc") -> list[float]:
    async with snakepit.start(config(1, transport)) as app:
        for _ in range(100):
            await app.execute("ping")
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            await app.execute("ping")
            lat.append(time.perf_counter() - t)
    return lat


def ppe_latency(n: int) -> list[float]:
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        for _ in range(100):
            ex.submit(ping).result()
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            ex.submit(ping).result()
            lat.append(time.perf_counter() - t)
    return lat


async def bare_grpc_latency(n: int) -> list[float]:
    """The showcase worker process, called through GrpcTransport directly: no pool."""
    from snakepit.transport.grpc import GrpcTransport
    from snakepit_bridge.proto import bridge_pb2 as pb

    r, w = os.pipe()
    env = dict(os.environ, SNAKEPIT_SECRET="bench")
    proc = subprocess.Popen([sys.executable, "-m", "snakepit_bridge", "--adapter",
                             "snakepit_bridge.adapters.showcase:ShowcaseAdapter", "--ready-fd",
                             str(w), "--heartbeat-timeout", "0"], pass_fds=(w,),
                            stdin=subprocess.PIPE, env=env)
    os.close(w)
    port = json.loads(os.read(r, 4096))["port"]
    os.close(r)
    transport = GrpcTransport(f"127.0.0.1:{port}", "bench")
    req = pb.ExecuteRequest(tool="ping", args_json=b"{}")
    try:
        for _ in range(100):
            await transport.execute(req)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            await transport.execute(req)
            lat.append(time.perf_counter() - t)
    finally:
        await transport.aclose()
        proc.terminate()
        proc.wait()
    return lat


ECHO = r"""
import os, struct, sys
r, w = int(sys.argv[1]), int(sys.argv[2])
buf = b""
while True:
    data = os.read(r, 65536)
    if not data:
        break
    buf += data
    while len(buf) >= 4:
        n = struct.unpack("<I", buf[:4])[0]
        if len(buf) < 4 + n:
            break
        frame, buf = buf[:4 + n], buf[4 + n:]
        os.write(w, frame)
"""


async def pipe_floor_latency(n: int) -> list[float]:
    """Length-prefixed frames over a pipe pair to an echo process: the floor."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", ECHO, str(to_child_r), str(from_child_w)],
                            pass_fds=(to_child_r, from_child_w))
    os.close(to_child_r)
    os.close(from_child_w)
    out = trio.lowlevel.FdStream(to_child_w)
    inp = trio.lowlevel.FdStream(from_child_r)
    frame = struct.pack("<I", 16) + b"x" * 16
    lat = []
    try:
        for i in range(n + 100):
            t = time.perf_counter()
            await out.send_all(frame)
            got = b""
            while len(got) < len(frame):
                got += await inp.receive_some(65536)
            if i >= 100:
                lat.append(time.perf_counter() - t)
    finally:
        await out.aclose()
        await inp.aclose()
        proc.wait()
    return lat


# -- 2. throughput ---------------------------------------------------------------------------
async def snakepit_throughput(workers: int, callers: int, seconds: float,
                              transport: str = "grpc") -> float:
    async with snakepit.start(config(workers, transport)) as app:
        return await _drive(lambda: app.execute("ping"), callers, seconds)


async def _drive(call: Callable[[], Awaitable[Any]], callers: int, seconds: float) -> float:
    done = 0
    deadline = trio.current_time() + seconds

    async def caller() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            await call()
            done += 1

    await call()
    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
    return done / seconds


def ppe_throughput(workers: int, callers: int, seconds: float) -> float:
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        ex.submit(ping).result()
        done = 0
        deadline = time.perf_counter() + seconds
        pending = {ex.submit(ping) for _ in range(callers)}
        while time.perf_counter() < deadline:
            finished, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            done += len(finished)
            pending |= {ex.submit(ping) for _ in finished}
        return done / seconds


def mp_throughput(workers: int, callers: int, seconds: float) -> float:
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.apply(ping)
        done = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            results = [pool.apply_async(ping) for _ in range(callers)]
            for r in results:
                r.get()
            done += callers
        return done / seconds


# -- 3. 8 MB round trip ----------------------------------------------------------------------
async def snakepit_bytes(mb: int, reps: int, transport: str = "grpc") -> float:
    payload = os.urandom(mb * 2**20)
    async with snakepit.start(config(1, transport)) as app:
        await app.execute("echo", {"x": b"warm"})
        t = time.perf_counter()
        for _ in range(reps):
            await app.execute("echo", {"x": payload})
        return mb * reps / (time.perf_counter() - t)


def ppe_bytes(mb: int, reps: int) -> float:
    payload = os.urandom(mb * 2**20)
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        ex.submit(echo, b"warm").result()
        t = time.perf_counter()
        for _ in range(reps):
            ex.submit(echo, payload).result()
        return mb * reps / (time.perf_counter() - t)


# -- 4. stream -------------------------------------------------------------------------------
async def snakepit_stream(n: int, transport: str = "grpc") -> float:
    async with snakepit.start(config(1, transport)) as app:
        t = time.perf_counter()
        count = 0
        async with app.stream("ping_stream", {"count": n}) as chunks:
            async for _ in chunks:
                count += 1
        return count / (time.perf_counter() - t)


# -- 5/6. startup and memory -----------------------------------------------------------------
async def snakepit_startup(n: int) -> tuple[float, float, float]:
    t = time.perf_counter()
    async with snakepit.start(config(n)) as app:
        elapsed = time.perf_counter() - t
        pss, uss = [], []
        for w in app.workers():
            info = psutil.Process(w["pid"]).memory_full_info()
            pss.append(getattr(info, "pss", info.uss))
            uss.append(info.uss)
    return elapsed, statistics.median(pss) / 2**20, statistics.median(uss) / 2**20


def ppe_memory() -> tuple[float, float]:
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        pid = ex.submit(os.getpid).result()
        info = psutil.Process(pid).memory_full_info()
        return getattr(info, "pss", info.uss) / 2**20, info.uss / 2**20


# -- 7. fairness -----------------------------------------------------------------------------
async def snakepit_fairness(transport: str = "grpc") -> float:
    async with snakepit.start(config(8, transport)) as app:
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(app.execute, "sleep", {"seconds": 0.5})
        return time.perf_counter() - t


# -- the run ---------------------------------------------------------------------------------
def pct(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    args = p.parse_args()
    reps = 2 if args.quick else args.reps
    seconds = 0.5 if args.quick else 1.5
    n_lat = 500 if args.quick else 2000
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(),
                                           "python": sys.version.split()[0]}}

    print(f"\n1. sequential ping latency, 1 worker ({n_lat} calls x {reps} reps), ms")
    lat_rows = {}
    for name, fn in [("snakepit/pipe", lambda: trio.run(snakepit_latency, n_lat, "pipe")),
                     ("snakepit/grpc", lambda: trio.run(snakepit_latency, n_lat)),
                     ("ProcessPoolExecutor", lambda: ppe_latency(n_lat)),
                     ("bare grpcio (trio)", lambda: trio.run(bare_grpc_latency, n_lat)),
                     ("raw pipe echo (floor)", lambda: trio.run(pipe_floor_latency, n_lat))]:
        runs = [fn() for _ in range(reps)]
        lat_rows[name] = {"p50": summary([pct(r, 0.5) for r in runs]),
                          "p99": summary([pct(r, 0.99) for r in runs])}
        r = lat_rows[name]
        print(f"  {name:<24} p50 {r['p50']['median']:.3f} ({r['p50']['min']:.3f}-"
              f"{r['p50']['max']:.3f})  p99 {r['p99']['median']:.3f}")
    results["latency_ms"] = lat_rows

    print(f"\n2. ping throughput, calls/s ({seconds} s x {reps} reps)")
    tp: dict[str, Any] = {}
    for workers in (2, 4):
        for callers in (1, 8, 64):
            row = {}
            for name, fn in [
                    ("snakepit/pipe", lambda: trio.run(snakepit_throughput, workers, callers,
                                                       seconds, "pipe")),
                    ("snakepit/grpc", lambda: trio.run(snakepit_throughput, workers, callers,
                                                       seconds)),
                    ("ProcessPoolExecutor", lambda: ppe_throughput(workers, callers, seconds)),
                    ("multiprocessing.Pool", lambda: mp_throughput(workers, callers, seconds))]:
                row[name] = summary([fn() for _ in range(reps)])
            tp[f"{workers}w/{callers}c"] = row
            cells = "  ".join(f"{k} {v['median']:.0f}" for k, v in row.items())
            print(f"  {workers} workers, {callers:>2} callers: {cells}")
    results["throughput"] = tp

    print("\n3. 8 MB round trip, MB/s")
    mb = {"snakepit/pipe": summary([trio.run(snakepit_bytes, 8, 3, "pipe")
                                    for _ in range(reps)]),
          "snakepit/grpc": summary([trio.run(snakepit_bytes, 8, 3) for _ in range(reps)]),
          "ProcessPoolExecutor": summary([ppe_bytes(8, 3) for _ in range(reps)])}
    for k, v in mb.items():
        print(f"  {k:<24} {v['median']:.0f} ({v['min']:.0f}-{v['max']:.0f})")
    results["bytes_8mb_mb_per_s"] = mb

    n_chunks = 20_000 if args.quick else 100_000
    print(f"\n4. stream of {n_chunks} chunks into trio, chunks/s")
    st = {}
    for transport in ("pipe", "grpc"):
        st[transport] = summary([trio.run(snakepit_stream, n_chunks, transport)
                                 for _ in range(reps)])
        v = st[transport]
        print(f"  snakepit/{transport:<15} {v['median']:.0f} ({v['min']:.0f}-{v['max']:.0f})")
    results["stream_chunks_per_s"] = st

    print("\n5/6. startup until all ready (s) and idle memory per worker (MB, median)")
    startup = {}
    for n in ((16,) if args.quick else (16, 100)):
        runs = [trio.run(snakepit_startup, n) for _ in range(max(1, reps // 2))]
        startup[n] = {"seconds": summary([r[0] for r in runs]),
                      "pss_mb": summary([r[1] for r in runs]),
                      "uss_mb": summary([r[2] for r in runs])}
        s = startup[n]
        print(f"  snakepit/grpc {n:>3} workers: {s['seconds']['median']:.2f} s, PSS "
              f"{s['pss_mb']['median']:.1f} MB, USS {s['uss_mb']['median']:.1f} MB")
    pss, uss = ppe_memory()
    print(f"  ProcessPoolExecutor worker: PSS {pss:.1f} MB, USS {uss:.1f} MB")
    results["startup"] = startup
    results["ppe_worker_memory_mb"] = {"pss": pss, "uss": uss}

    print("\n7. fairness: 8 workers x 20 concurrent 0.5 s sleeps (ideal 1.5 s)")
    fair = {}
    for transport in ("pipe", "grpc"):
        fair[transport] = summary([trio.run(snakepit_fairness, transport) for _ in range(reps)])
        v = fair[transport]
        print(f"  snakepit/{transport:<15} {v['median']:.3f} s ({v['min']:.3f}-{v['max']:.3f})")
    results["fairness_s"] = fair

    out = Path(__file__).parent / "results" / "run_all.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {out}  (telemetry overhead: benchmarks/telemetry_overhead.py)")


if __name__ == "__main__":
    main()
