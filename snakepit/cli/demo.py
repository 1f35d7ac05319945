"""``snakepit demo``: start a pool of showcase workers and run a few tools, showing each step."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import trio
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="start a showcase pool and run a few tools")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 2),
                   help="pool size (default: min(4, cpus))")
    p.add_argument("--transport", default=None, choices=["auto", "grpc", "pipe"],
                   help="the pools' transport (default: auto = pipe for Python workers)")
    p.add_argument("--config", default=None,
                   help="snakepit.toml: takes state_dir, instance_name and log_level from it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    trio.run(_demo, args)
    return 0


async def _demo(args: argparse.Namespace) -> None:
    import snakepit

    console = Console()
    kw = {} if args.transport is None else {"transport": args.transport}
    base = snakepit.Config.from_file(args.config) if args.config else snakepit.Config()
    config = snakepit.Config(
        pools=[snakepit.PoolConfig(name="default", size=args.workers, adapter=SHOWCASE, **kw)],
        state_dir=base.state_dir, instance_name=base.instance_name, log_level=base.log_level)
    console.print(f"[bold]starting[/] a pool of {args.workers} Python workers "
                  f"({SHOWCASE})")
    t0 = time.perf_counter()
    async with snakepit.start(config) as app:
        console.print(f"  ready in {time.perf_counter() - t0:.2f} s: "
                      + ", ".join(f"{w['id']} (pid {w['pid']})" for w in app.workers()))

        async def show(label: str, coro: Any, told: Any = repr) -> Any:
            t = time.perf_counter()
            result = await coro
            console.print(f"[cyan]{label}[/] → {told(result)}  "
                          f"[dim]{(time.perf_counter() - t) * 1e3:.1f} ms[/]")
            return result

        await show("ping", app.execute("ping"), lambda r: (
            f"{r['status']} from worker pid {r['pid']} at "
            f"{time.strftime('%H:%M:%S', time.localtime(r['timestamp']))}"))
        await show("add(2, 3)", app.execute("add", {"a": 2, "b": 3}))
        await show("process_text(upper)",
                   app.execute("process_text", {"text": "hello snakepit", "operation": "upper"}))
        for _ in range(3):
            await show("session_counter (session 'demo')",
                       app.execute("session_counter", {}, session_id="demo"))

        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(args.workers):
                nursery.start_soon(app.execute, "sleep", {"seconds": 0.3})
        console.print(f"[cyan]{args.workers} × sleep(0.3) concurrently[/] → "
                      f"{time.perf_counter() - t:.2f} s")

        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("stream_progress", total=10)
            async with app.stream("stream_progress", {"steps": 10, "delay_ms": 50}) as chunks:
                async for chunk in chunks:
                    if chunk.data:
                        progress.update(task, completed=chunk.data.get("step", 0))

        try:
            await app.execute("error_demo", {"error_type": "value"})
        except snakepit.ToolError as exc:
            console.print(f"[cyan]error_demo[/] → [red]{type(exc).__name__}[/] "
                          f"remote_type={exc.remote_type} message={exc.message!r}")

        stats = app.stats("default")
        table = Table(title="app.stats('default')")
        table.add_column("stat")
        table.add_column("value", justify="right")
        for key, value in stats.items():
            table.add_row(key, str(value))
        console.print(table)
    console.print("[bold]stopped[/]: every worker process reaped")
