"""Workers on a second (loopback) Ray node against local gRPC workers: one table, JSON too.

    python benchmarks/ray_bench.py [--reps 5] [--quick] [--json PATH]     (make bench runs it)

A Ray cluster on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0): a head with no CPUs, so
every worker lands on the second node, which has 8. Both peers run the showcase worker over
gRPC; the Ray one adds the actor, mutual TLS and the secret (ADR 0006).

Rows: sequential ping latency p50 (1 worker); ping throughput, 2 workers, 8 callers; 8
workers ready (a fresh pool per repetition); and, for Ray only, how long after its host is
killed with SIGKILL the remote worker processes are gone (a host subprocess per repetition).
Medians of ``--reps`` repetitions with min-max. Needs ``pip install 'snakepit[ray]'``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"   # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import psutil  # noqa: E402
import trio  # noqa: E402

import snakepit  # noqa: E402
from benchlib import drive, pool_config, summary  # noqa: E402

HERE = Path(__file__).resolve().parent
LOCAL, RAY = "local gRPC workers", "Ray node 2 (TLS)"
REMOTE_CPUS = 8
STATE = "/tmp/snakepit-bench-ray"


def log(msg: str) -> None:
    print(f"[ray_bench] {msg}", file=sys.stderr, flush=True)


def config(size: int, address: str | None) -> snakepit.Config:
    placement = snakepit.RayPlacement(address=address) if address else None
    return pool_config(size, "grpc", state_dir=STATE, placement=placement)


async def ping_p50(address: str | None, n: int) -> float:
    async with snakepit.start(config(1, address)) as app:
        for _ in range(20):
            await app.execute("ping")
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            await app.execute("ping")
            samples.append(1000 * (time.perf_counter() - t))
        return statistics.median(samples)


async def throughput(address: str | None, window: float) -> float:
    async with snakepit.start(config(2, address)) as app:
        await drive(lambda: app.execute("ping"), 8, 0.2)   # warm-up
        return await drive(lambda: app.execute("ping"), 8, window)


async def startup(address: str | None, size: int) -> float:
    t = time.perf_counter()
    async with snakepit.start(config(size, address)) as app:
        took = time.perf_counter() - t
        assert len(app.workers()) == size
    return took


HOST = textwrap.dedent("""
    import json, sys, trio, snakepit
    sys.path.insert(0, sys.argv[2])
    from benchlib import pool_config

    async def main():
        config = pool_config(2, "grpc", state_dir=sys.argv[3],
                             placement=snakepit.RayPlacement(address=sys.argv[1]))
        async with snakepit.start(config) as app:
            print(json.dumps([w["pid"] for w in app.workers()]), flush=True)
            await trio.sleep_forever()

    trio.run(main)
""")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (not a zombie); a process gone between the two looks is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill9_cleanup(address: str) -> float:
    """Seconds from the host's SIGKILL until none of its remote worker processes lives."""
    host = subprocess.Popen([sys.executable, "-c", HOST, address, str(HERE), STATE],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        pids = json.loads(host.stdout.readline() if host.stdout else b"[]")
        t = time.perf_counter()
        host.send_signal(signal.SIGKILL)
        host.wait()
        deadline = t + 120
        while time.perf_counter() < deadline:
            if not any(_alive(p) for p in pids):
                return time.perf_counter() - t
            time.sleep(0.01)   # not our processes: poll with a deadline
        raise RuntimeError(f"remote workers {pids} outlived their host by 120 s")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        if host.stdout:
            host.stdout.close()


ROWS = [("ping_p50_ms", "ping latency p50, ms (1 worker)", ".3f"),
        ("ping_calls_s", "ping calls/s, 2 workers, 8 callers", ".0f"),
        ("startup_8_s", "8 workers ready, s", ".2f"),
        ("kill9_cleanup_s", "host kill -9 → remote workers gone, s", ".2f")]


def table(rows: dict[str, dict[str, Any]]) -> str:
    out = [f"| workload | {LOCAL} | {RAY} | Ray/local |", "| --- | ---: | ---: | ---: |"]
    for key, label, fmt in ROWS:
        cells = []
        for peer in (LOCAL, RAY):
            s = rows.get(key, {}).get(peer)
            cells.append(f"{s['median']:{fmt}} ({s['min']:{fmt}}–{s['max']:{fmt}})" if s
                         else "")
        local, ray = (rows.get(key, {}).get(p) for p in (LOCAL, RAY))
        ratio = f"{ray['median'] / local['median']:.2f}" if local and ray else ""
        out.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5; quick 2)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None, help="write the results here (default: results/)")
    args = ap.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    n_lat, window = (300, 0.5) if args.quick else (1000, 1.0)
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError as exc:
        sys.exit(f"ray_bench needs Ray: pip install 'snakepit[ray]' ({exc})")
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 0, "include_dashboard": False})
    rows: dict[str, dict[str, Any]] = {}
    try:
        cluster.add_node(num_cpus=REMOTE_CPUS)
        cluster.wait_for_nodes()
        log(f"cluster up in {time.perf_counter() - t0:.1f} s at {cluster.address}")
        for peer, address in ((LOCAL, None), (RAY, cluster.address)):
            for key, run in (("ping_p50_ms", lambda: trio.run(ping_p50, address, n_lat)),
                             ("ping_calls_s", lambda: trio.run(throughput, address, window)),
                             ("startup_8_s", lambda: trio.run(startup, address, 8))):
                values = [run() for _ in range(reps)]
                rows.setdefault(key, {})[peer] = summary(values)
                log(f"{peer}: {key} median {statistics.median(values):.4g}")
        values = [kill9_cleanup(cluster.address) for _ in range(reps)]
        rows.setdefault("kill9_cleanup_s", {})[RAY] = summary(values)
        log(f"kill -9 cleanup median {statistics.median(values):.3g} s")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    report = table(rows)
    print(f"Ray placement: {reps} repetitions, ray {ray.__version__}, "
          f"{os.cpu_count()} CPUs; total {time.perf_counter() - t0:.0f} s\n\n{report}")
    out = Path(args.json) if args.json else \
        HERE / "results" / f"ray_bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": reps, "rows": rows, "table": report,
                               "ray": ray.__version__}, indent=1))


if __name__ == "__main__":
    main()
