"""Large values through a real pool: exact round trips over the pipe (by shared memory, nothing
left in /dev/shm), a 300 MB payload, and the limits: a frame never exceeds ``MAX_FRAME``
(refused on either side, the worker unharmed) and gRPC refuses what is over its message limit
before copying it, naming the limit, the size and the way out."""

import glob
import os
import re
import time

import numpy as np
import psutil
import pytest
import trio

import snakepit
from shm_values import MB, assert_same, values
from snakepit_bridge import shm
from snakepit_bridge.protocol import MAX_FRAME, MAX_MESSAGE


def _exited(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def segments(prefix):
    return glob.glob(os.path.join(shm.SHM_DIR, prefix + "-*"))


@pytest.mark.parametrize("transport", ["pipe"])
async def test_every_kind_of_large_value_round_trips_exactly(make_config, transport, reads):
    sent = values()
    async with snakepit.start(make_config(size=1, adapter="pool_adapters:BigValues")) as app:
        prefix = app._host.shm_prefix
        out = await app.execute("echo", sent)
        assert_same(out, sent)
        # each kind alone too: a request with one blob, a result with one blob
        for key, value in sent.items():
            assert_same(await app.execute("echo", {key: value}), {key: value})
        stream = [np.full((600, 500), i, dtype=np.float32) for i in range(3)]   # 1.2 MB each
        async with app.stream("yields", {"items": stream}) as chunks:
            got = [chunk.data async for chunk in chunks]
        assert len(got) == 3 and all(np.array_equal(g, s) for g, s in zip(got, stream))
        # every large value went by segment, each way (the sync generator's chunks too)
        assert len([n for n in reads if n.startswith(prefix + "-w")]) == 2 * len(sent) - 4 + 3
        assert segments(prefix) == []
    assert segments(prefix) == []


@pytest.mark.parametrize("transport", ["pipe"])
async def test_a_300_mb_payload_goes_through_the_pipe(make_config, transport):
    array = np.arange(300 * MB, dtype=np.uint8)   # wraps around: every byte value
    blob = bytes(200 * MB)
    async with snakepit.start(make_config(size=1)) as app:
        prefix = app._host.shm_prefix
        t0 = time.perf_counter()
        out = await app.execute("echo", {"a": array, "b": blob})
        took = time.perf_counter() - t0
        assert out["a"].dtype == np.uint8 and np.array_equal(out["a"], array)
        assert out["b"] == blob
        assert segments(prefix) == []
    print(f"300 MB array + 200 MB bytes echoed in {took:.2f} s")


@pytest.mark.parametrize("transport", ["grpc"])
async def test_grpc_refuses_a_payload_over_its_limit_and_names_the_way_out(make_config,
                                                                           transport):
    array = np.zeros(300 * MB, dtype=np.uint8)
    async with snakepit.start(make_config(size=1, adapter="pool_adapters:BigValues")) as app:
        with pytest.raises(snakepit.InvalidArgumentsError) as caught:
            await app.execute("echo", {"a": array})
        message = str(caught.value)
        size = int(re.search(r"is (\d+) bytes", message).group(1))
        assert 300 * MB < size < 300 * MB + 1000 and f"{MAX_MESSAGE}-byte limit" in message
        assert "transport='pipe'" in message, message
        assert await app.execute("echo", {"a": array[:MB]}) is not None   # worker unharmed
        with pytest.raises(snakepit.SnakepitError) as caught:   # an answer over the limit
            await app.execute("text", {"n": MAX_MESSAGE})
        assert "RESOURCE_EXHAUSTED" in str(caught.value) and f"limited to {MAX_MESSAGE} bytes" \
            in str(caught.value) and "transport='pipe'" in str(caught.value), caught.value


@pytest.mark.parametrize("transport", ["pipe"])
async def test_no_frame_over_the_limit_is_written_by_either_side(make_config, transport):
    async with snakepit.start(make_config(size=1, adapter="pool_adapters:BigValues")) as app:
        (worker,) = app.workers()
        with pytest.raises(snakepit.SnakepitError) as caught:   # the host's request
            await app.execute("text", {"n": 1, "pad": "y" * MAX_FRAME})
        assert f"{MAX_FRAME}-byte limit" in str(caught.value), caught.value
        with pytest.raises(snakepit.SnakepitError) as caught:   # the worker's result
            await app.execute("text", {"n": MAX_FRAME})
        assert f"{MAX_FRAME}-byte limit" in str(caught.value), caught.value
        with pytest.raises(snakepit.SnakepitError) as caught:   # a chunk of a stream
            async with app.stream("texts", {"n": MAX_FRAME}) as chunks:
                async for _ in chunks:
                    pass
        assert f"{MAX_FRAME}-byte limit" in str(caught.value), caught.value
        # the pipe was never out of step: the same worker answers
        assert await app.execute("text", {"n": 3}) == "xxx"
        assert app.workers()[0]["pid"] == worker["pid"]


@pytest.mark.parametrize("transport", ["pipe"])
async def test_a_worker_the_living_host_stops_leaves_the_runs_segments_alone(make_config,
                                                                            transport):
    """A recycled worker sees its stdin and pipe close, as after a host's kill -9; but the host
    is alive, so the run's segments (another worker's request in flight) are not its to remove
    (tests/chaos/test_host_death.py: the host killed)."""
    async with snakepit.start(make_config(size=1, worker_max_requests=1)) as app:
        prefix = app._host.shm_prefix
        in_flight = os.path.join(shm.SHM_DIR, f"{prefix}-h{os.getpid()}.999-1")
        with open(in_flight, "wb") as f:
            f.write(b"y" * 4096)
        (first,) = app.workers()
        assert await app.execute("echo", {"a": 1}) == {"a": 1}   # its last request
        with trio.fail_after(30):
            while not _exited(first["pid"]):
                await trio.sleep(0.05)
        assert os.path.exists(in_flight)
    assert not os.path.exists(in_flight)   # the host's own sweep as it stops
