"""A worker process's lifetime: when it is ready, and why and when it stops.

    lifetime = Lifetime(LifetimeConfig(heartbeat_interval=2, heartbeat_timeout=10,
                                       dependent=True, shutdown_grace=5), worker_id="w-1")
    lifetime.watch_stdin()            # stdin EOF: the host is gone (even after its kill -9)
    ...
    take_group_down()                 # last act: nothing a tool started outlives the worker
    lifetime.handle_signals()         # SIGTERM/SIGINT: graceful stop
    report_ready(ready_fd, ready_line(port=port, worker_id="w-1", transport="grpc"))
    await lifetime.watchdog(probe)    # host heartbeats lost (and the probe failed) while dependent
    await lifetime.wait_stopped()     # then: lifetime.exit_code, lifetime.grace

The same for both carriers and for the workers a zygote forks (they run the same ``serve``).

Grandchildren (ADR 0002): a worker leads its own process group, and a tool's children are in
it. On its way out, whatever the reason, the worker SIGKILLs the rest of its group; once the
host is lost it also arms a deadline (``EXIT_DEADLINE``) after which it kills the whole group,
itself included, should its orderly exit hang.

Shared memory: when the host is lost *and its process has exited* (a ``kill -9`` leaves no
one to sweep), the worker removes every segment of the host's run (``SNAKEPIT_SHM_PREFIX``),
at once and again as it exits, so none waits for the next start's orphan sweep. A host that
only closed this worker's pipe or stdin (it stops the worker) is alive: nothing is removed.
"""

from __future__ import annotations

from snakepit_bridge.lazy_ssl import import_asyncio

import_asyncio()   # before asyncio is imported otherwise: ssl waits for TLS (a zygote too)

import asyncio
import atexit
import dataclasses
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from typing import Awaitable, Callable


from snakepit_bridge import shm
from snakepit_bridge.protocol import (EXIT_HOST_LOST, EXIT_OK, HOST_LOST_GRACE,
                                      PROTOCOL_VERSION, SHM_PREFIX_ENV)

log = logging.getLogger("snakepit_bridge")

EXIT_DEADLINE = 3.0   # seconds past HOST_LOST_GRACE before a worker that lost its host is killed
_exit_deadline = False   # armed only in a worker process of its own (never in a test's or app's)
# The host: what started this process when it imported this module. A zygote imports it before
# it forks, so the workers it forks inherit the host's pid, not the zygote's.
HOST_PID = os.getppid()


def own_process() -> None:
    """This process is a worker (``python -m snakepit_bridge``): once its host is lost it may
    kill its own process group if its orderly exit hangs."""
    global _exit_deadline
    _exit_deadline = True


@dataclasses.dataclass(frozen=True, slots=True)
class LifetimeConfig:
    heartbeat_interval: float
    heartbeat_timeout: float    # <= 0: no watchdog
    dependent: bool             # stop when host heartbeats are lost (else log and serve on)
    shutdown_grace: float       # what in-flight work gets on SIGTERM/SIGINT


class Lifetime:
    """Why and when the worker stops: the first :meth:`request_stop` wins."""

    def __init__(self, config: LifetimeConfig, worker_id: str) -> None:
        self.config = config
        self.worker_id = worker_id
        self.exit_code = EXIT_OK
        self.grace = config.shutdown_grace
        self.reason = ""
        self.last_heartbeat = time.monotonic()
        self._stop = asyncio.Event()
        self._deadline_armed = False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self, code: int, grace: float, why: str) -> None:
        if not self._stop.is_set():
            log.info("worker %s stopping: %s", self.worker_id, why)
            self.exit_code, self.grace, self.reason = code, grace, why
            self._stop.set()

    def host_lost(self, why: str) -> None:
        """The host is gone: stop at once, in-flight work has nobody to answer. Should the
        orderly exit hang (a tool thread that never returns), the group is killed anyway."""
        if _exit_deadline and not self._deadline_armed:
            self._deadline_armed = True
            timer = threading.Timer(HOST_LOST_GRACE + EXIT_DEADLINE, _kill_own_group)
            timer.daemon = True
            timer.start()
            # The pipe's EOF can arrive while the killed host is still exiting (its files are
            # closed before it becomes a zombie): wait a moment for it to have exited.
            threading.Thread(target=sweep_once_host_exits, name="snakepit-host-exit",
                             daemon=True).start()
        self.request_stop(EXIT_HOST_LOST, HOST_LOST_GRACE, why)

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    def heartbeat(self) -> None:
        """A host heartbeat arrived."""
        self.last_heartbeat = time.monotonic()

    def watch_stdin(self, fd: int = 0) -> None:
        """Watch ``fd`` to EOF in the event loop: EOF means the host is gone (even after
        kill -9), since the host holds the other end of the worker's stdin. A stdin the loop
        cannot watch (a regular file) gets a thread reading it instead."""
        loop = asyncio.get_running_loop()
        lost = "stdin closed: the host is gone"

        def readable() -> None:
            try:
                if os.read(fd, 65536):
                    return
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass
            loop.remove_reader(fd)
            self.host_lost(lost)

        try:
            # in the loop, not a thread of its own: starting a thread was a wait on the
            # scheduler in every worker's start, and its reads a malloc arena of its own
            loop.add_reader(fd, readable)
        except (OSError, ValueError):
            threading.Thread(target=_read_to_eof, args=(fd, loop, self.host_lost, lost),
                             name="snakepit-stdin", daemon=True).start()

    def handle_signals(self) -> None:
        """SIGTERM and SIGINT stop the worker gracefully (in-flight work gets the grace)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, EXIT_OK, self.config.shutdown_grace,
                                    f"signal {sig.name}")

    def signals_done(self) -> None:
        """The worker is past its stop: signals no longer reach the event loop. (asyncio's
        ``loop.close`` closes its wake-up socket before it removes its signal handlers, so a
        SIGTERM in between printed "Exception ignored when trying to write to the signal
        wakeup fd ... Bad file descriptor" to the host's log.)"""
        signal.set_wakeup_fd(-1)

    async def watchdog(self, probe: Callable[[], Awaitable[bool]] | None) -> None:
        """Until stopped: when no host heartbeat came for ``heartbeat_timeout`` and ``probe``
        (if any) cannot reach the host either, a dependent worker stops (host lost); an
        independent one logs it and serves on."""
        timeout = self.config.heartbeat_timeout
        if timeout <= 0:
            return
        period = min(self.config.heartbeat_interval, timeout) / 2 or 0.5
        while not self._stop.is_set():
            await asyncio.sleep(period)
            if time.monotonic() - self.last_heartbeat < timeout:
                continue
            if probe is not None and await probe():
                self.heartbeat()
                continue
            if self.config.dependent:
                self.host_lost(f"no host heartbeat for {timeout} s (dependent)")
                return
            log.warning("no host heartbeat for %s s; not dependent, serving on", timeout)
            self.heartbeat()


def _read_to_eof(fd: int, loop: asyncio.AbstractEventLoop, then: Callable[[str], None],
                 why: str) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass
    try:
        loop.call_soon_threadsafe(then, why)
    except RuntimeError:
        pass   # the loop has finished: the worker is exiting anyway


def ready_line(*, port: int, worker_id: str, transport: str, language: str = "python",
               pid: int | None = None) -> str:
    """The readiness line a worker (or zygote) writes once it serves (protos/README.md)."""
    return json.dumps({"port": port, "pid": os.getpid() if pid is None else pid,
                       "worker_id": worker_id, "language": language,
                       "protocol": PROTOCOL_VERSION, "transport": transport}) + "\n"


def report_ready(fd: int | None, line: str) -> None:
    """Write the readiness line to ``fd`` and close it (``None``: to stdout)."""
    if fd is None:
        sys.stdout.write(line)
        sys.stdout.flush()
        return
    data = line.encode()
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)


def exited(pid: int) -> bool:
    """Whether process ``pid`` has exited (gone, or a zombie not reaped yet). Unknown: no."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    except OSError:   # no /proc: ask the kernel (a zombie still counts as alive there)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass
        return False
    return stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X")


def sweep_once_host_exits(within: float = 2.0) -> None:
    """Sweep the run's segments (and again at exit: what in-flight work writes meanwhile) once
    the host has exited, if it does within ``within`` seconds; a host that lives on (it stopped
    this worker itself) keeps them. Waits on a pidfd where there is one."""
    deadline = time.monotonic() + within
    try:
        pidfd = os.pidfd_open(HOST_PID)
    except (AttributeError, OSError):   # no pidfd (old kernel), or the host is gone already
        pidfd = None
    try:
        while not exited(HOST_PID):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if pidfd is not None:
                select.select([pidfd], [], [], left)   # readable once the host has exited
            else:
                time.sleep(min(left, 0.01))
    finally:
        if pidfd is not None:
            os.close(pidfd)
    sweep_host_segments()
    atexit.register(sweep_host_segments)


def sweep_host_segments() -> None:
    """Remove every shared-memory segment of this worker's run (its host has exited)."""
    prefix = os.environ.get(SHM_PREFIX_ENV, "")
    if prefix:
        removed = shm.sweep(prefix + "-")
        if removed:
            log.info("removed %d shared-memory segment(s) of the exited host", len(removed))


def _leads_own_group() -> bool:
    # Only a group of our own: a worker run by hand from a shell that did not make it a group
    # leader must not signal its shell's job.
    return os.getpgrp() == os.getpid()


def _kill_own_group() -> None:
    if _leads_own_group():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(EXIT_HOST_LOST)


def _group_members(pgrp: int) -> list[int] | None:
    """Other processes in process group ``pgrp`` (from /proc; None where there is none)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    me, found = os.getpid(), []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue   # gone meanwhile
        fields = stat[stat.rfind(b")") + 2:].split()   # after "pid (comm) "
        if len(fields) > 2 and int(fields[2]) == pgrp and fields[0] != b"Z":
            found.append(int(entry))
    return found


def take_group_down() -> None:
    """SIGKILL every other process of the worker's process group: a tool's children, and
    theirs, must not outlive the worker (ADR 0002, "Grandchildren"). Only when the worker leads
    its group, as snakepit starts it. Without /proc, the whole group, the worker included."""
    if not _leads_own_group():
        return
    pgrp = os.getpgrp()
    for _ in range(5):   # a member may fork while we look: look again
        members = _group_members(pgrp)
        if members is None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.killpg(pgrp, signal.SIGKILL)
        if not members:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
