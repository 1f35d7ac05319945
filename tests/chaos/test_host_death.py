"""The host dies or is told to stop, as a subprocess, while a tool's child (a grandchild in its
worker's process group) runs: nothing it started may outlive it by more than a few seconds,
without waiting for a next start's sweep.

``kill -9``: the workers see stdin EOF and take their process group down on their way out.
SIGTERM: the same orderly shutdown as Ctrl-C: the script's ``finally`` blocks run, the process
registry is left empty and the admin socket removed, the process exits with
KeyboardInterrupt's status.
"""

import glob
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from leaks import gone, wait_until
from snakepit.pool.process_registry import ProcessRegistry
from snakepit_bridge import shm

pytestmark = [pytest.mark.chaos]

TEST_ADAPTERS = Path(__file__).resolve().parents[1] / "pool"   # pool_adapters.py
GONE_WITHIN = 5.0
EXIT_WITHIN = 20.0

PRELUDE = """
import json, os, sys, time, trio, snakepit
from snakepit_bridge import shm
cfg = snakepit.Config(state_dir=sys.argv[1], pools=[snakepit.PoolConfig(
    name="default", size=1, adapter="pool_adapters:MisbehavingAdapter", transport=sys.argv[2],
    preload=sys.argv[3] == "preload", shutdown_grace=1.0,
    env={"PYTHONPATH": sys.argv[4]})])
def report(pids):
    print(json.dumps(pids), flush=True)
"""

HOSTS = {
    "start": PRELUDE + """
async def main():
    async with snakepit.start(cfg) as app, trio.open_nursery() as nursery:
        try:
            pids = [app.workers()[0]["pid"], await app.execute("spawn_grandchild")]
            # In flight when the host goes: a tool thread that will not end by itself, and a
            # segment of this run (a request's, not read yet; a pipe worker's own).
            nursery.start_soon(app.execute, "sleep", {"seconds": 600})
            prefix = app._host.shm_prefix
            for side in (f"h{os.getpid()}.1", f"w{pids[0]}"):
                with open(os.path.join(shm.SHM_DIR, f"{prefix}-{side}-999"), "wb") as f:
                    f.write(b"y" * 4096)
            while app.stats()["busy"] == 0:
                await trio.sleep(0.01)
            report(pids)
            print(json.dumps(prefix), flush=True)
            await trio.sleep(600)
        finally:
            print("finally", flush=True)
trio.run(main)
""",
    "client": PRELUDE + """
with snakepit.Client(cfg) as sp:
    try:
        report([sp.workers()[0]["pid"], sp.execute("spawn_grandchild")])
        time.sleep(600)
    finally:
        print("finally", flush=True)
""",
    "run_as_script": PRELUDE + """
def body(sp):
    try:
        report([sp.workers()[0]["pid"], sp.execute("spawn_grandchild")])
        time.sleep(600)
    finally:
        print("finally", flush=True)
snakepit.run_as_script(body, cfg)
""",
}


def _host(tmp_path, kind, transport="auto", start="spawn"):
    return subprocess.Popen(
        [sys.executable, "-c", HOSTS[kind], str(tmp_path / "state"), transport, start,
         str(TEST_ADAPTERS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(host, pids):
    for pid in pids:   # never leave them to the next test, whatever happened
        if not gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if host.poll() is None:
        host.kill()
    out, err = host.communicate()
    return out, err


@pytest.mark.parametrize("transport,start", [("grpc", "spawn"), ("pipe", "preload"),
                                             ("pipe", "spawn")])
def test_host_kill_9_takes_a_tools_child_down(tmp_path, transport, start):
    """... and a pipe worker removes its run's shared-memory segments (gRPC has none)."""
    host = _host(tmp_path, "start", transport, start)
    pids, run = [], []
    try:
        pids = json.loads(host.stdout.readline())
        run = glob.glob(os.path.join(shm.SHM_DIR, json.loads(host.stdout.readline()) + "-*"))
        assert len(run) == 2
        host.kill()
        host.wait()
        assert wait_until(lambda: all(gone(p) for p in pids), GONE_WITHIN), \
            f"alive {GONE_WITHIN} s after the host's kill -9: " \
            f"{[p for p in pids if not gone(p)]} (worker, tool's child)"
        if transport == "pipe":
            assert wait_until(lambda: not any(map(os.path.exists, run)), GONE_WITHIN), \
                f"left {GONE_WITHIN} s after the host's kill -9: {run}"
    finally:
        _finish(host, pids)
        for path in filter(os.path.exists, run):
            os.unlink(path)


@pytest.mark.parametrize("kind", sorted(HOSTS))
def test_sigterm_is_an_orderly_shutdown(tmp_path, kind):
    host = _host(tmp_path, kind)
    pids = []
    try:
        line = host.stdout.readline()
        assert line, host.communicate()[1][-2000:]
        pids = json.loads(line)
        host.send_signal(signal.SIGTERM)
        assert wait_until(lambda: host.poll() is not None, EXIT_WITHIN), "SIGTERM did not stop it"
        out, err = host.communicate()
        assert "finally" in out, (out, err[-2000:])   # left its block as on Ctrl-C
        assert "KeyboardInterrupt" in err or "Terminated" in err, err[-2000:]
        assert wait_until(lambda: all(gone(p) for p in pids), GONE_WITHIN), pids
        assert list((tmp_path / "state").glob("admin/*.sock")) == []
        registry = ProcessRegistry.open(tmp_path / "state", instance_name="default",
                                        register_run=False)
        try:
            assert registry.entries() == []   # rows removed by the orderly stop, not a sweep
        finally:
            registry.close()
    finally:
        _finish(host, pids)
