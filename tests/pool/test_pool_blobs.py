"""Large blobs: exact round trips on both transports; on pipe they go through shared memory,
and no segment outlives its request — nor a crash of the worker or of the host."""

import glob
import os
import signal

import numpy as np
import pytest
import trio

import snakepit
from snakepit.pool.process_registry import ProcessRegistry
from snakepit_bridge import shm
from snakepit_bridge.proto import bridge_pb2 as pb

MB = 1 << 20


def segments(prefix):
    return sorted(glob.glob(os.path.join(shm.SHM_DIR, prefix + "*")))


@pytest.mark.both_transports
async def test_big_blobs_round_trip_and_leave_no_segment(make_config, transport, reads):
    array = np.arange(MB, dtype="<f8").reshape(1024, 1024)     # 8 MB
    data = os.urandom(3 * MB)
    small = b"x" * 1000
    async with snakepit.start(make_config(size=1)) as app:
        prefix = app._host.shm_prefix
        out = await app.execute("echo", {"array": array, "data": data, "small": small})
        assert out["data"] == data and out["small"] == small
        assert out["array"].dtype == array.dtype and np.array_equal(out["array"], array)
        assert segments(prefix) == []
        # the host read the worker's two big blobs from shared memory, not the small one
        assert len(reads) == (2 if transport == "pipe" else 0)
        assert all(name.startswith(prefix + "-w") for name in reads)
        out = await app.execute("process_binary", {"data": data, "operation": "checksum"})
        assert out and segments(prefix) == []


@pytest.mark.parametrize("transport", ["pipe"])   # gRPC carries blobs inline
async def test_a_killed_workers_segments_are_removed(make_config, transport):
    async with snakepit.start(make_config(size=1)) as app:
        prefix = app._host.shm_prefix
        (worker,) = app.workers()
        # what a worker leaves when it dies between writing a segment and sending its frame
        stray = os.path.join(shm.SHM_DIR, f"{prefix}-w{worker['pid']}-999")
        with open(stray, "wb") as f:
            f.write(b"y" * MB)
        os.kill(worker["pid"], signal.SIGKILL)
        with trio.fail_after(30):
            while os.path.exists(stray):
                await trio.sleep(0.05)
            while not app.workers() or app.workers()[0]["pid"] == worker["pid"] or \
                    app.workers()[0]["state"] != "ready":
                await trio.sleep(0.05)
        assert await app.execute("echo", {"data": b"z" * (2 * MB)}) == {"data": b"z" * (2 * MB)}
    assert segments(prefix) == []


def test_registry_sweep_removes_segments_of_dead_runs_only(tmp_path):
    import sqlite3
    live = ProcessRegistry.open(tmp_path, instance_name="default", run_id="liverun")
    db = sqlite3.connect(tmp_path / "processes.sqlite3")
    db.execute("INSERT INTO runs VALUES ('deadrun', 'default', 999999999, 1.0, 1.0)")
    db.commit()
    db.close()
    dead_seg = os.path.join(shm.SHM_DIR, shm.run_prefix("deadrun") + "-h1.1-1")
    live_seg = os.path.join(shm.SHM_DIR, shm.run_prefix("liverun") + "-h1.1-1")
    for path in (dead_seg, live_seg):
        with open(path, "wb") as f:
            f.write(b"1")
    try:
        report = live.sweep()
        assert report.dead_runs == ["deadrun"]
        assert report.segments == [os.path.basename(dead_seg)]
        assert not os.path.exists(dead_seg) and os.path.exists(live_seg)
        live.close()          # a clean stop removes its own run's segments
        assert not os.path.exists(live_seg)
    finally:
        for path in (dead_seg, live_seg):
            shm.unlink(os.path.basename(path))


def test_a_segment_is_decoded_once_then_gone():
    from snakepit_bridge import serialization
    seg = shm.Segments(shm.run_prefix("unit"), "h1.1")
    array = np.arange(MB // 8, dtype="<i8")
    data, blobs = serialization.encode({"a": array, "b": b"s", "c": b"q" * MB})
    msg = pb.ExecuteResponse(result_json=data, blobs=blobs)
    names = seg.export(msg)
    assert len(names) == 2 and all(not msg.blobs[k].data for k in ("b0", "b2"))
    copy = pb.ExecuteResponse()
    copy.CopyFrom(msg)
    value = serialization.decode(msg.result_json, msg.blobs)
    assert np.array_equal(value["a"], array) and value["b"] == b"s" and value["c"] == b"q" * MB
    value["a"][0] = 7     # a private mapping: writable, and nobody else sees the write
    assert not any(os.path.exists(os.path.join(shm.SHM_DIR, n)) for n in names)
    with pytest.raises(shm.SegmentError, match="|".join(names)):
        serialization.decode(copy.result_json, copy.blobs)   # the second reader finds it gone
