"""What the benchmark scripts share: the pool config, the load driver, summaries and the
paired telemetry measurement (used by run_all.py and telemetry_overhead.py)."""

from __future__ import annotations

import statistics
import subprocess
from typing import Any, Awaitable, Callable

import trio

import snakepit

STATE = "/tmp/snakepit-bench"
EVENTS = [("snakepit", "request", "execute", e) for e in ("start", "stop", "exception")]


def pool_config(size: int, transport: str = "grpc", state_dir: str = STATE,
                **extra: Any) -> snakepit.Config:
    """One pool of ``size`` Python workers that all start at once (no startup batching)."""
    return snakepit.Config(state_dir=state_dir, log_level="warning", pools=[
        snakepit.PoolConfig(name="default", size=size, transport=transport,
                            startup_batch_size=size, startup_batch_delay=0.0,
                            startup_timeout=max(60.0, 1.5 * size), **extra)])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate ``proc`` (killed after 10 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


async def drive(call: Callable[[], Awaitable[Any]], callers: int, seconds: float) -> float:
    """Calls/s of ``callers`` trio tasks each calling ``call()`` back to back for ``seconds``."""
    done = 0
    deadline = trio.current_time() + seconds

    async def caller() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            await call()
            done += 1

    t = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
    return done / (trio.current_time() - t)


async def telemetry_pairs(app: Any, callers: int, seconds: float, reps: int
                          ) -> dict[str, list[float]]:
    """Ping calls/s with no handler and with a handler on every request event: ``reps``
    pairs on the same running app (after a short warm-up), alternating, and in ABBA order
    (every other pair runs the handler first) so a drift does not favour one side."""
    def ping() -> Awaitable[Any]:
        return app.execute("ping")

    async def with_handler() -> float:
        seen = [0]
        snakepit.telemetry.attach_many("bench", EVENTS,
                                       lambda e, m, md, c: seen.__setitem__(0, seen[0] + 1))
        try:
            return await drive(ping, callers, seconds)
        finally:
            snakepit.telemetry.detach("bench")

    results: dict[str, list[float]] = {"no_handler": [], "handler": []}
    await drive(ping, callers, min(0.5, seconds))   # warm-up
    for i in range(reps):
        if i % 2:
            results["handler"].append(await with_handler())
        results["no_handler"].append(await drive(ping, callers, seconds))
        if not i % 2:
            results["handler"].append(await with_handler())
    return results
