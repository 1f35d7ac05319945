"""The documented events fire, with their documented fields, during real runs."""

import os
import signal

import pytest
import trio

import snakepit
from snakepit import errors, telemetry


# event -> (measurement keys, metadata keys) that docs/telemetry.md promises
CATALOG = {
    ("snakepit", "pool", "init_started"): ({"size"}, {"pool"}),
    ("snakepit", "pool", "init_complete"): ({"duration", "workers"}, {"pool"}),
    ("snakepit", "pool", "worker", "spawned"): (set(), {"pool", "worker_id", "pid"}),
    ("snakepit", "pool", "worker", "terminated"): (set(), {"pool", "worker_id", "reason"}),
    ("snakepit", "pool", "worker", "restarted"): (set(), {"pool", "worker_id", "reason"}),
    ("snakepit", "pool", "worker", "recycled"): (set(), {"pool", "worker_id", "reason"}),
    ("snakepit", "pool", "saturated"): ({"queued"}, {"pool", "tool"}),
    ("snakepit", "pool", "queue_timeout"): ({"queue_timeout"}, {"pool", "tool"}),
    ("snakepit", "request", "execute", "start"): ({"system_time"},
                                                 {"pool", "tool", "correlation_id"}),
    ("snakepit", "request", "execute", "stop"): (
        {"duration", "queue_time"}, {"pool", "worker_id", "tool", "session_id", "success",
                                     "correlation_id"}),
    ("snakepit", "request", "execute", "exception"): (
        {"duration", "queue_time"}, {"pool", "tool", "success", "kind", "reason"}),
    ("snakepit", "stream", "start"): ({"queue_time"}, {"pool", "worker_id", "tool"}),
    ("snakepit", "stream", "chunk"): ({"bytes"}, {"pool", "tool", "chunk_id"}),
    ("snakepit", "stream", "stop"): ({"duration", "chunks"}, {"pool", "tool", "success"}),
    ("snakepit", "stream", "exception"): ({"duration", "queue_time"},
                                          {"pool", "tool", "success", "kind", "reason"}),
    ("snakepit", "heartbeat", "ping"): ({"seq"}, {"pool", "worker_id"}),
    ("snakepit", "heartbeat", "pong"): ({"latency"}, {"pool", "worker_id"}),
    ("snakepit", "session", "created"): ({"ttl"}, {"session_id"}),
    ("snakepit", "session", "deleted"): (set(), {"session_id"}),
    ("snakepit", "session", "quota_exceeded"): ({"limit"}, {"quota"}),
    ("snakepit", "supervisor", "child_started"): (set(), {"supervisor", "child_id"}),
    ("snakepit", "python", "custom", "event"): ({"i"}, {"worker_id", "correlation_id", "from"}),
}


async def wait_seen(seen, *events, timeout=15):
    with trio.fail_after(timeout):
        while not all(e in seen for e in events):
            await trio.sleep(0.05)


async def test_catalog_events_fire_with_their_fields(make_config):
    seen = {}
    telemetry.attach_many("catalog-test", list(CATALOG),
                          lambda e, m, md, c: seen.setdefault(e, (m, md)))
    try:
        hb = snakepit.HeartbeatConfig(interval=0.1, timeout=1.0)
        config = make_config(size=1, adapter="pool_adapters:EmittingAdapter", heartbeat=hb,
                             worker_max_requests=3,
                             sessions=snakepit.SessionConfig(max_sessions=1))
        async with snakepit.start(config) as app:
            await app.execute("emit", {"name": "custom.event"}, session_id="s1",
                              correlation_id="corr-1")
            with pytest.raises(errors.SnakepitError):
                await app.execute("nope")
            async with app.stream("emit", {"name": "z"}) as chunks:
                [c async for c in chunks]
            with pytest.raises(errors.SnakepitError):
                async with app.stream("nope") as chunks:
                    [c async for c in chunks]
            with pytest.raises(errors.QuotaExceeded):
                await app.sessions.create("s2")
            await app.sessions.delete("s1")
            await wait_seen(seen, ("snakepit", "pool", "worker", "recycled"),
                            ("snakepit", "heartbeat", "pong"))
            await wait_seen(seen, ("snakepit", "python", "custom", "event"))
            # the slot's current worker (the recycled one may still be draining beside it)
            newest = max(app.workers(), key=lambda w: w["incarnation"])
            os.kill(newest["pid"], signal.SIGKILL)
            await wait_seen(seen, ("snakepit", "pool", "worker", "restarted"))
        # saturation and queue timeout: one worker busy, a queue of one
        async with snakepit.start(make_config(size=1, max_queue_size=1,
                                              queue_timeout=0.3)) as app:
            async def queued():
                with pytest.raises(errors.QueueTimeout):
                    await app.execute("ping")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(app.execute, "sleep", {"seconds": 0.8})
                with trio.fail_after(5):
                    while app.stats()["busy"] == 0:
                        await trio.sleep(0.01)
                nursery.start_soon(queued)
                with trio.fail_after(5):
                    while app.stats()["queued"] == 0:
                        await trio.sleep(0.01)
                with pytest.raises(errors.PoolSaturated):
                    await app.execute("ping")
    finally:
        telemetry.detach("catalog-test")
    missing = [".".join(e) for e in CATALOG if e not in seen]
    assert not missing, missing
    for event, (measurements, metadata) in CATALOG.items():
        m, md = seen[event]
        assert measurements <= set(m), (event, m)
        assert metadata <= set(md), (event, md)
    assert seen[("snakepit", "python", "custom", "event")][1]["correlation_id"] == "corr-1"


async def test_worker_telemetry_control_at_run_time(make_config):
    got = []
    telemetry.attach_many("ctl-test", [("snakepit", "python", "a", "b"),
                                       ("snakepit", "python", "c", "d")],
                          lambda e, m, md, c: got.append(".".join(e[2:])))
    try:
        config = make_config(size=1, adapter="pool_adapters:EmittingAdapter")
        async with snakepit.start(config) as app:
            async def until(name):
                with trio.fail_after(10):
                    while name not in got:
                        await app.execute("emit", {"name": name})
                        await trio.sleep(0.05)

            await until("a.b")
            app.set_worker_telemetry(deny=["a"])
            await until("c.d")               # the control has reached the worker by now
            got.clear()
            await app.execute("emit", {"name": "a.b", "n": 5})
            await app.execute("emit", {"name": "c.d"})
            with trio.fail_after(10):
                while "c.d" not in got:
                    await trio.sleep(0.01)
            assert "a.b" not in got
            app.set_worker_telemetry(sampling_rate=0.0)
            with pytest.raises(ValueError):
                app.set_worker_telemetry(sampling_rate=2.0)
    finally:
        telemetry.detach("ctl-test")
