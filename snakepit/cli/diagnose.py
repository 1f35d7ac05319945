"""``snakepit diagnose``: is this machine ready for the configured pools? pass/warn/fail."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from snakepit.admin import query
from snakepit.cli.common import add_config_flags, load, pick
from snakepit_bridge.protocol import THREAD_LIMIT_VARS as THREAD_VARS


def register(sub: Any) -> None:
    p = sub.add_parser("diagnose", help="check the environment (exit 1 if anything fails)",
                       description="Check the machine for a config: the --config file's, else "
                                   "the running app's (asked through its admin socket, so the "
                                   "checks run in its environment), else the default config.")
    add_config_flags(p)
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="the running app with this run id (a prefix is enough)")
    p.add_argument("--scaling", type=int, default=0, metavar="N",
                   help="also start N showcase workers and report time and memory")
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="table (default) or json")
    p.set_defaults(func=run)


def checks(config: Any, state_dir: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(name: str, status: str, detail: str, fix: str = "") -> None:
        out.append({"check": name, "status": status, "detail": detail, "fix": fix})

    add("python", "pass", sys.version.split()[0])
    try:
        import grpc
        import google.protobuf  # type: ignore[import-untyped]
        import snakepit_bridge  # noqa: F401
        add("bridge", "pass", f"snakepit_bridge importable; grpcio {grpc.__version__}, "
            f"protobuf {google.protobuf.__version__}")
    except ImportError as exc:
        add("bridge", "fail", str(exc), "pip install snakepit (grpcio, protobuf)")
    planned = sum(p.size for p in config.pools)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 20 * planned + 100
    add("ulimit -n", "pass" if soft >= need else "warn", f"{soft} open files for {planned} "
        f"planned workers (~{need} needed)", "" if soft >= need else f"ulimit -n {need}")
    unset = [v for v in THREAD_VARS if v not in os.environ]
    add("thread limits", "pass", "workers get 1 thread per BLAS/OpenMP library unless "
        "PoolConfig.thread_limits says otherwise" + (f" (host has {', '.join(unset)} unset)"
                                                     if unset else ""))
    try:
        import psutil
        free = psutil.virtual_memory().available
        per = free / max(planned, 1) / 2**20
        add("memory", "pass" if per >= 100 else "warn",
            f"{free / 2**30:.1f} GiB available, {per:.0f} MB per planned worker",
            "" if per >= 100 else "fewer workers, or more memory")
    except Exception as exc:  # psutil is a dependency, but never crash a diagnosis
        add("memory", "warn", str(exc))
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir):
            pass
        add("state dir", "pass", f"{state_dir} is writable")
    except OSError as exc:
        add("state dir", "fail", f"{state_dir}: {exc}", "set Config(state_dir=...) to a "
            "writable directory")
    for pool in config.pools:
        result = pool.resolved_adapter().check()
        add(f"pool {pool.name} runtime", "pass" if result.ok else "fail",
            f"{result.runtime} {result.version}".strip() if result.ok else result.message,
            "" if result.ok else f"install the {result.runtime} runtime")
    return out


def scaling(n: int, state_dir: Any) -> dict[str, Any]:
    import psutil
    import trio

    import snakepit

    cfg = snakepit.Config(state_dir=str(state_dir), instance_name="diagnose-scaling",
                          pools=[snakepit.PoolConfig(name="scaling", size=n,
                                                     startup_batch_size=max(8, n))])
    result: dict[str, Any] = {}

    async def main() -> None:
        t0 = time.perf_counter()
        wall0 = time.time()
        async with snakepit.start(cfg) as app:
            result["startup_s"] = time.perf_counter() - t0
            ready = sorted(w["started_at"] - wall0 for w in app.workers("scaling")
                           if w.get("started_at"))
            if ready:   # where time went: the first worker vs the last (CPU contention)
                result["first_ready_s"] = ready[0]
                result["median_ready_s"] = ready[len(ready) // 2]
            uss = []
            for w in app.workers("scaling"):
                try:
                    uss.append(psutil.Process(w["pid"]).memory_full_info().uss)
                except psutil.Error:
                    pass
            result["workers"] = len(app.workers("scaling"))
            result["uss_mb_per_worker"] = sum(uss) / max(len(uss), 1) / 2**20
            t1 = time.perf_counter()
            for _ in range(50):
                await app.execute("ping", pool="scaling")
            result["ping_ms"] = (time.perf_counter() - t1) / 50 * 1000

    trio.run(main)
    return result


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    config, state_dir, _ = load(args)
    apps = [] if args.config else pick(args, none_ok=True)
    if apps:
        app = apps[0]
        rows = query(Path(app["socket"]), "checks", timeout=30.0)["checks"]
        source = f"the running app (run {app['run_id']}, instance {app['instance']!r})"
    else:
        rows = checks(config, state_dir)
        source = f"config file {args.config}" if args.config else \
            "the default config (no app is running)"
    report: dict[str, Any] = {"checks": rows, "config": source}
    if args.scaling:
        report["scaling"] = scaling(args.scaling, state_dir)
    failed = any(r["status"] == "fail" for r in rows)
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    table = Table(title=f"snakepit diagnose: {source}")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    colors = {"pass": "green", "warn": "yellow", "fail": "red"}
    for r in rows:
        table.add_row(r["check"], f"[{colors[r['status']]}]{r['status']}[/]", r["detail"],
                      r["fix"])
    console = Console()
    console.print(table)
    if args.scaling:
        s = report["scaling"]
        console.print(f"scaling: {s['workers']} workers ready in {s['startup_s']:.2f} s "
                      f"(first after {s.get('first_ready_s', 0):.2f} s, median "
                      f"{s.get('median_ready_s', 0):.2f} s: the rest is workers importing and "
                      f"initializing concurrently on {os.cpu_count()} CPUs), "
                      f"{s['uss_mb_per_worker']:.1f} MB USS each, ping {s['ping_ms']:.2f} ms")
    return 1 if failed else 0
