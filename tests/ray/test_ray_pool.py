"""A pool whose workers are Ray actors on a 2-node loopback cluster (module-scoped cluster)."""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import pytest
import trio

import snakepit
from snakepit import errors, telemetry
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg
from snakepit_bridge.protocol import SECRET_HEADER, TLS_WORKER_NAME

from conftest import HERE, wait_no_workers, worker_processes


async def test_spread_lands_two_per_node_and_everything_works_through_it(ray_config):
    seen = []
    telemetry.attach("ray-test", ("snakepit", "python", "ray", "hello"),
                     lambda e, m, md, c: seen.append(md))
    try:
        async with snakepit.start(ray_config(size=4, affinity="strict_queue")) as app:
            workers = app.workers()
            per_node = collections.Counter(w["node_id"] for w in workers)
            assert len(per_node) == 2 and sorted(per_node.values()) == [2, 2], workers
            assert all(w["state"] == "ready" for w in workers)

            # execute, and the worker is the process the pool says it is
            pids = {w["pid"] for w in workers}
            assert (await app.execute("where"))["pid"] in pids

            # stream
            async with app.stream("steps", {"n": 5}) as chunks:
                got = [c async for c in chunks]
            # exactly what the tool yielded, in order (the wire's end marker is not a chunk)
            assert [c.data for c in got] == [0, 1, 2, 3, 4]
            assert [c.chunk_id for c in got] == [1, 2, 3, 4, 5]

            # sessions with (strict) affinity stay on their worker
            first = (await app.execute("where", session_id="s1"))["pid"]
            for _ in range(3):
                assert (await app.execute("where", session_id="s1"))["pid"] == first

            # host tools: the worker calls back over the host's TLS listener
            app.tools.register("double", lambda x: 2 * x)
            assert await app.execute("try_host", {"name": "double", "args": {"x": 21}}) == \
                {"result": 42}

            # telemetry from the remote worker reaches the host's hub
            assert await app.execute("emit", {"name": "ray.hello"}) == "ray.hello"
            with trio.fail_after(10):
                while not seen:
                    await trio.sleep(0.02)
            assert seen[0]["from"] == "ray" and seen[0]["worker_id"].startswith("remote-")
    finally:
        telemetry.detach("ray-test")


async def test_a_crashed_remote_worker_is_restarted_in_its_slot(ray_config):
    async with snakepit.start(ray_config(size=2)) as app:
        victim = app.workers()[0]
        async with trio.open_nursery() as nursery:
            failed = trio.Event()

            async def in_flight():
                with pytest.raises(errors.WorkerCrashed):
                    await app.execute("sleep", {"seconds": 60.0}, session_id="pinned")
                failed.set()

            pinned = (await app.execute("where", session_id="pinned"))["pid"]
            nursery.start_soon(in_flight)
            with trio.fail_after(10):
                while app.stats()["busy"] < 1:
                    await trio.sleep(0.02)
            os.kill(pinned, signal.SIGKILL)
            with trio.fail_after(10):
                await failed.wait()
        with trio.fail_after(60):
            while True:
                now = {w["id"]: w for w in app.workers() if w["state"] == "ready"}
                if len(now) == 2 and all(w["pid"] != pinned for w in now.values()):
                    break
                await trio.sleep(0.1)
        assert now[victim["id"]]["node_id"] is not None
        assert app.stats()["restarts"] >= 1


async def test_leaving_async_with_stops_every_worker_process(ray_config):
    async with snakepit.start(ray_config(size=2)) as app:
        pids = [w["pid"] for w in app.workers()]
        assert {p.pid for p in worker_processes()} >= set(pids)
    # Stop waits for each actor to reap its worker: gone now, not eventually.
    alive = [p.pid for p in worker_processes() if p.pid in pids]
    assert alive == []


async def test_worker_port_refuses_a_call_without_secret_or_without_tls(ray_config):
    async with snakepit.start(ray_config(size=1)) as app:
        host = app._host
        pool = host.registry.whereis(("pool", "remote"))
        live = next(iter(pool.runtime.workers.values()))
        address = live.transport.address
        assert not address.startswith("0.0.0.0")
        tls = host.ray.ca.host

        def call(channel, metadata):
            stub = pbg.WorkerServiceStub(channel)
            try:
                return stub.Ping(pb.PingRequest(message="x"), metadata=metadata, timeout=5)
            finally:
                channel.close()

        def secure():
            return grpc.secure_channel(address, tls.channel_credentials(),
                                       options=tls.channel_options(TLS_WORKER_NAME))

        def run_checks():
            # TLS, no secret: UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                call(secure(), ())
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # TLS, wrong secret: UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                call(secure(), ((SECRET_HEADER, "wrong"),))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # plaintext with the right secret: no connection at all
            with pytest.raises(grpc.RpcError) as info:
                call(grpc.insecure_channel(address), ((SECRET_HEADER, host.secret),))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            # TLS and the secret: served
            assert call(secure(), ((SECRET_HEADER, host.secret),)).message

        await trio.to_thread.run_sync(run_checks)

        # a certificate of another run's CA: no connection, even with the right secret
        from snakepit.placement.tls import RunCA
        stranger = RunCA.create().host

        def other_ca():
            channel = grpc.secure_channel(address, stranger.channel_credentials(),
                                          options=stranger.channel_options(TLS_WORKER_NAME))
            return call(channel, ((SECRET_HEADER, host.secret),))

        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(other_ca)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE

        # the host's listener for remote workers: TLS only too
        remote = host.bridge.remote_address
        assert remote and not remote.startswith("0.0.0.0")

        def plaintext_host():
            channel = grpc.insecure_channel(remote)
            try:
                pbg.HostServiceStub(channel).ListHostTools(
                    pb.ListHostToolsRequest(), metadata=((SECRET_HEADER, host.secret),),
                    timeout=5)
            finally:
                channel.close()

        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(plaintext_host)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_ray_connection_is_owned_only_when_the_app_made_it(ray_config, cluster):
    import ray

    assert not ray.is_initialized()
    for _ in range(2):   # two apps one after the other: each connects and disconnects
        async with snakepit.start(ray_config(size=1)) as app:
            assert ray.is_initialized()
            assert (await app.execute("where"))["pid"] == app.workers()[0]["pid"]
        assert not ray.is_initialized()
    await trio.to_thread.run_sync(functools.partial(ray.init, address=cluster.address))
    try:
        async with snakepit.start(ray_config(size=1)) as app:
            assert (await app.execute("where"))["pid"] == app.workers()[0]["pid"]
        assert ray.is_initialized()   # the user's connection: left open
    finally:
        ray.shutdown()


async def test_a_worker_that_cannot_start_on_its_node_says_why(ray_config):
    with pytest.raises(errors.WorkerStartError) as info:
        async with snakepit.start(ray_config(size=1, adapter="ray_adapters:NoSuchAdapter")):
            pass
    message = str(info.value)
    assert "remote-1" in message and "exited with code 3 before reporting ready" in message
    assert "has no 'NoSuchAdapter'" in message    # the worker's own stderr, from its node


HOST_SCRIPT = textwrap.dedent("""
    import json, sys, trio, snakepit

    async def main():
        config = snakepit.Config(state_dir=sys.argv[2], pools=[snakepit.PoolConfig(
            name="remote", size=2, adapter="ray_adapters:RayTestAdapter", startup_timeout=60,
            env={"PYTHONPATH": sys.argv[3]},
            placement=snakepit.RayPlacement(address=sys.argv[1]))])
        async with snakepit.start(config) as app:
            print(json.dumps([w["pid"] for w in app.workers()]), flush=True)
            await trio.sleep_forever()

    trio.run(main)
""")


def test_host_killed_with_sigkill_leaves_no_worker(cluster, tmp_path):
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT, cluster.address, str(tmp_path / "state"),
         str(HERE)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(HERE),
        env={**os.environ, "PYTHONPATH": str(HERE)})
    try:
        line = host.stdout.readline()
        assert line, "the host subprocess did not start its pool"
        pids = json.loads(line)
        assert len(pids) == 2
        killed = time.monotonic()
        host.send_signal(signal.SIGKILL)
        host.wait()
        took = wait_no_workers(pids, timeout=60)
        assert took is not None, f"workers {pids} outlived their host by 60 s"
        print(f"remote workers gone {time.monotonic() - killed:.2f} s after the host's kill -9")
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        host.stdout.close()
