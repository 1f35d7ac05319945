"""CPU time per call, host and worker: sequential `add` calls on one worker.

    python benchmarks/cpu_per_call.py [--calls 3000] [--json out.json]

Process CPU time (psutil: user + system, all threads) of the calling process and of the worker
process, divided by the number of calls, for snakepit over each transport and for
ProcessPoolExecutor (1 worker, `submit(...).result()`), in one run. On a shared machine CPU
time per call is steadier than a rate. Prints a table and writes JSON.

The gRPC pool's worker also serves two bare grpcio clients, measured right after the pool on
the same worker process with the same request (`grpc_rows`), so the pool + transport overhead
over grpcio is read in one run:
- "bare grpcio (trio)": the generated stub's `.future()`, its done-callback waking the trio task
  (`TrioToken.run_sync_soon`) — the cheapest way a trio program waits for a grpcio call. Its
  channel holds the worker's telemetry stream open as the pool's does: without an open call,
  grpcio starts a new channel thread for every sequential call.
- "bare grpcio (sync)": the stub's blocking call from a plain thread, no event loop: grpcio's
  floor in any Python program.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import json
import operator
import queue
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import grpc
import psutil
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import pool_config  # noqa: E402

import snakepit  # noqa: E402
from snakepit_bridge import serialization  # noqa: E402
from snakepit_bridge.proto import bridge_pb2 as pb  # noqa: E402
from snakepit_bridge.proto import bridge_pb2_grpc as pbg  # noqa: E402
from snakepit_bridge.protocol import GRPC_MESSAGE_OPTIONS, SECRET_HEADER  # noqa: E402

GRPC, BARE_TRIO, BARE_SYNC = "snakepit/grpc", "bare grpcio (trio)", "bare grpcio (sync)"


def cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def measure(calls: int, one_call: Any, worker_pid: int) -> dict[str, float]:
    host, worker = psutil.Process().pid, worker_pid
    h0, w0, t0 = cpu(host), cpu(worker), time.perf_counter()
    one_call(calls)
    h1, w1, t1 = cpu(host), cpu(worker), time.perf_counter()
    return {"host_us": (h1 - h0) / calls * 1e6, "worker_us": (w1 - w0) / calls * 1e6,
            "wall_us": (t1 - t0) / calls * 1e6, "calls": calls}


def snakepit_row(transport: str, calls: int) -> dict[str, float]:
    if transport == "grpc":
        return grpc_rows(calls, bare=False)[GRPC]
    return trio.run(_pool_rows, transport, calls, False)[f"snakepit/{transport}"]


def grpc_rows(calls: int, bare: bool = True) -> dict[str, dict[str, float]]:
    """snakepit over gRPC, then (``bare``) the bare grpcio clients on the same worker."""
    return trio.run(_pool_rows, "grpc", calls, bare)


async def _measure(calls: int, worker_pid: int, run: Callable[[int], Any]) -> dict[str, float]:
    host = psutil.Process().pid
    h0, w0, t0 = cpu(host), cpu(worker_pid), time.perf_counter()
    await run(calls)
    h1, w1, t1 = cpu(host), cpu(worker_pid), time.perf_counter()
    return {"host_us": (h1 - h0) / calls * 1e6, "worker_us": (w1 - w0) / calls * 1e6,
            "wall_us": (t1 - t0) / calls * 1e6, "calls": calls}


async def _pool_rows(transport: str, calls: int, bare: bool) -> dict[str, dict[str, float]]:
    async with snakepit.start(pool_config(1, transport)) as app:
        async def pool_calls(n: int) -> None:
            for i in range(n):
                await app.execute("add", {"a": i, "b": 1})

        await pool_calls(200)                           # warm-up
        pid = app.workers()[0]["pid"]
        rows = {f"snakepit/{transport}": await _measure(calls, pid, pool_calls)}
        if bare:
            [worker] = app.pool().runtime.workers.values()
            secret = dict(worker.transport._metadata)[SECRET_HEADER]  # noqa: SLF001
            with BareGrpc(worker.transport.address, secret) as client:
                await client.trio_calls(200)
                rows[BARE_TRIO] = await _measure(calls, pid, client.trio_calls)
                await trio.to_thread.run_sync(client.sync_calls, 200)
                rows[BARE_SYNC] = await _measure(calls, pid, functools.partial(
                    trio.to_thread.run_sync, client.sync_calls))
        return rows


def add_request(i: int) -> pb.ExecuteRequest:
    data, blobs = serialization.encode({"a": i, "b": 1})
    return pb.ExecuteRequest(tool="add", args_json=data, blobs=blobs)


class BareGrpc:
    """grpcio's generated stub on a channel of its own to one worker (see the module doc).

        with BareGrpc("127.0.0.1:50051", secret) as client:
            response = await client.execute(request)        # from trio
            async with client.stream(request) as messages:  # a thread reads, trio iterates
                async for chunk in messages: ...
    """

    def __init__(self, address: str, secret: str) -> None:
        self.channel = grpc.insecure_channel(  # the transport's options (but its stream one)
            address, options=[*GRPC_MESSAGE_OPTIONS, ("grpc.enable_retries", 0)])
        self.stub = pbg.WorkerServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = ((SECRET_HEADER, secret),)
        self._controls: queue.Queue[Any] = queue.Queue()
        self._controls.put(pb.TelemetryControl(enabled=True, sampling_rate=1.0))
        self._telemetry = self.stub.StreamTelemetry(iter(self._controls.get, None),
                                                    metadata=self.metadata)

    def __enter__(self) -> "BareGrpc":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._telemetry.cancel()
        self._controls.put(None)
        self.channel.close()

    async def execute(self, request: pb.ExecuteRequest) -> pb.ExecuteResponse:
        """The future's done-callback wakes this task (it is not cancellable mid-call)."""
        future = self.stub.Execute.future(request, metadata=self.metadata)
        task, token = trio.lowlevel.current_task(), trio.lowlevel.current_trio_token()
        future.add_done_callback(lambda _: token.run_sync_soon(trio.lowlevel.reschedule, task))
        await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
        return future.result()

    @contextlib.asynccontextmanager
    async def stream(self, request: pb.ExecuteRequest) -> AsyncIterator[AsyncIterator[Any]]:
        """A thread iterates the call and hands each message to trio (trio.from_thread.run)
        through a memory channel; leaving cancels the call."""
        call = self.stub.ExecuteStream(request, metadata=self.metadata)
        send, recv = trio.open_memory_channel[Any](64)

        def read() -> None:
            try:
                for message in call:
                    trio.from_thread.run(send.send, message)
            except (grpc.RpcError, trio.BrokenResourceError, trio.RunFinishedError):
                pass
            finally:
                with contextlib.suppress(trio.RunFinishedError):
                    trio.from_thread.run_sync(send.close)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, read)
            try:
                yield recv
            finally:
                call.cancel()
                await recv.aclose()

    async def trio_calls(self, n: int) -> None:
        for i in range(n):
            if not (await self.execute(add_request(i))).success:
                raise RuntimeError("add failed")

    def sync_calls(self, n: int) -> None:
        for i in range(n):
            if not self.stub.Execute(add_request(i), metadata=self.metadata).success:
                raise RuntimeError("add failed")


def ppe_row(calls: int) -> dict[str, float]:
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        for _ in range(200):
            ex.submit(operator.add, 1, 2).result()
        pid = next(iter(ex._processes))   # noqa: SLF001 (the stdlib keeps it private)

        def run(n: int) -> None:
            for i in range(n):
                ex.submit(operator.add, i, 1).result()
        return measure(calls, run, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--json", default="cpu_per_call.json")
    args = parser.parse_args()
    rows = {"snakepit/pipe": snakepit_row("pipe", args.calls),
            **grpc_rows(args.calls),
            "ProcessPoolExecutor": ppe_row(args.calls)}
    print(f"{'peer':22} {'host µs/call':>13} {'worker µs/call':>15} {'wall µs/call':>13}")
    for name, r in rows.items():
        print(f"{name:22} {r['host_us']:13.1f} {r['worker_us']:15.1f} {r['wall_us']:13.1f}")
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
