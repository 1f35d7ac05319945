"""The worker's lifetime in-process: first stop wins, and the heartbeat watchdog's decisions
(stop when dependent, probe the host first, serve on when independent)."""

import asyncio
import os
import time

from snakepit_bridge.lifetime import Lifetime, LifetimeConfig, ready_line
from snakepit_bridge.protocol import EXIT_HOST_LOST, EXIT_OK, HOST_LOST_GRACE, PROTOCOL_VERSION


def lifetime(dependent=True, timeout=0.05):
    return Lifetime(LifetimeConfig(heartbeat_interval=0.02, heartbeat_timeout=timeout,
                                   dependent=dependent, shutdown_grace=3.0), "w-1")


def test_the_first_stop_request_wins():
    async def run():
        life = lifetime()
        life.request_stop(EXIT_OK, 3.0, "signal SIGTERM")
        life.host_lost("stdin closed")
        await asyncio.wait_for(life.wait_stopped(), 1)
        return life
    life = asyncio.run(run())
    assert (life.exit_code, life.grace, life.reason) == (EXIT_OK, 3.0, "signal SIGTERM")


def test_a_dependent_worker_without_heartbeats_stops_as_host_lost():
    async def run():
        life = lifetime()
        watchdog = asyncio.ensure_future(life.watchdog(None))
        await asyncio.wait_for(life.wait_stopped(), 5)
        await watchdog
        return life
    life = asyncio.run(run())
    assert (life.exit_code, life.grace) == (EXIT_HOST_LOST, HOST_LOST_GRACE)
    assert "no host heartbeat" in life.reason


def test_a_host_that_answers_the_probe_keeps_the_worker_and_a_failing_one_stops_it():
    async def run():
        life = lifetime()
        probes = []
        answer = asyncio.Event()   # set: the host stops answering

        async def probe():
            probes.append(life.stopping)
            if len(probes) == 3:
                answer.set()
            return not answer.is_set()
        watchdog = asyncio.ensure_future(life.watchdog(probe))
        await asyncio.wait_for(life.wait_stopped(), 5)
        await watchdog
        return life, probes
    life, probes = asyncio.run(run())
    assert len(probes) == 3 and life.exit_code == EXIT_HOST_LOST


def test_an_independent_worker_serves_on_without_heartbeats():
    async def run():
        life = lifetime(dependent=False)
        seen = life.last_heartbeat

        async def watch_resets():   # polled, bounded by wait_for below
            while life.last_heartbeat == seen:   # the watchdog restarts its clock
                await asyncio.sleep(0.01)
        watchdog = asyncio.ensure_future(life.watchdog(None))
        await asyncio.wait_for(watch_resets(), 5)
        stopped = life.stopping
        life.request_stop(EXIT_OK, 0.0, "test over")
        await asyncio.wait_for(watchdog, 5)
        return stopped
    assert asyncio.run(run()) is False


def test_ready_line_names_the_protocol_version():
    line = ready_line(port=0, worker_id="w-1", transport="pipe", pid=7)
    assert line.endswith("\n")
    assert '"protocol": %d' % PROTOCOL_VERSION in line and '"transport": "pipe"' in line


def test_exited_tells_a_living_host_from_one_killed_and_not_yet_reaped():
    import subprocess
    import sys

    from snakepit_bridge.lifetime import exited
    assert not exited(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not exited(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        # a zombie (killed, not reaped): gone for the worker, though kill(pid, 0) still works
        while not exited(child.pid):
            assert time.monotonic() < deadline, "the killed child never showed as exited"
            time.sleep(0.01)
        os.kill(child.pid, 0)
    finally:
        child.kill()
        child.wait()
    assert exited(child.pid)


def watch_until_lost(fd, close=None):
    """Watch ``fd`` as stdin; ``close`` (a write end) is closed once watching. Returns the
    reason the worker stops and the threads started meanwhile."""
    import threading

    async def run():
        life = lifetime(timeout=0)
        before = set(threading.enumerate())
        life.watch_stdin(fd)
        started = {t.name for t in set(threading.enumerate()) - before}
        if close is not None:
            os.write(close, b"noise the worker ignores\n")
            os.close(close)
        await asyncio.wait_for(life.wait_stopped(), 5)
        return life, started
    return asyncio.run(run())


def test_stdin_eof_is_host_lost_watched_by_the_loop_without_a_thread():
    r, w = os.pipe()
    try:
        life, started = watch_until_lost(r, close=w)
    finally:
        os.close(r)
    assert (life.exit_code, life.reason) == (EXIT_HOST_LOST, "stdin closed: the host is gone")
    assert started == set()


def test_a_stdin_the_loop_cannot_watch_gets_a_thread(tmp_path):
    path = tmp_path / "stdin"
    path.write_bytes(b"a regular file: epoll refuses it\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        life, started = watch_until_lost(fd)
    finally:
        os.close(fd)
    assert (life.exit_code, life.reason) == (EXIT_HOST_LOST, "stdin closed: the host is gone")
    assert started <= {"snakepit-stdin"}   # it may have finished already
