"""The host's side of a pool's zygote (``PoolConfig(preload=True)``; the zygote process is
``snakepit_bridge/zygote.py``).

The zygote is started like a worker (its own process group, registry record, readiness line,
output forwarded, stdin EOF = host gone). Its deaths stop where a worker's do: the pool's
``zygote`` child (:func:`snakepit.pool.supervisor.zygote_child`) restarts it with a worker
slot's backoff and never fails because of it; the workers it forked are killed with it and
their starters fork them again from the next zygote (``ZygoteKeeper.running`` waits for it).
``fork`` hands a zygote a worker's command line, environment and fds and returns a
:class:`ForkedProcess`: the part of ``trio.Process`` a
:class:`~snakepit.pool.process.WorkerProcess` uses, with the exit code the zygote reports.
"""

from __future__ import annotations

import array
import itertools
import json
import logging
import os
import signal
import socket
from typing import Any, cast

import psutil
import trio

from snakepit.errors import WorkerStartError
from snakepit_bridge.signals import signal_group

log = logging.getLogger("snakepit.pool.zygote")

WORKER_MODULE = ["-m", "snakepit_bridge"]
REMAPPED_FLAGS = ("--ready-fd", "--pipe-fd")


class ForkedProcess:
    """A worker forked by the zygote: pid, stdio streams, and ``wait()``."""

    def __init__(self, pid: int, stdin: Any, stdout: Any, stderr: Any, zygote: "Zygote"
                 ) -> None:
        self.pid = pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: int | None = None
        self._zygote = zygote
        self._exited = trio.Event()

    def _set_exit(self, code: int | None) -> None:
        if not self._exited.is_set():
            self.returncode = code
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        if self.returncode is None:
            # The zygote died before reporting: the process was re-parented; wait for it to go.
            while _running(self.pid):
                await trio.sleep(0.05)
            self.returncode = -1
        return self.returncode


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class Zygote:
    def __init__(self, process: Any, control: socket.socket, argv: list[str]) -> None:
        self.process = process           # the zygote's WorkerProcess
        self.argv = argv                 # its command line (also what its forks show in ps)
        self._control = trio.socket.from_stdlib_socket(control)
        self._ids = itertools.count(1)
        self._replies: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._closed = False
        self._forks_killed = False
        self._lock = trio.Lock()

    async def run(self) -> None:
        """Read the zygote's messages until it goes away; then nothing it forked is waited on."""
        try:
            while True:
                data = await self._control.recv(1 << 16)
                if not data:
                    break
                self._dispatch(json.loads(data))
        except (OSError, trio.ClosedResourceError) as exc:
            log.debug("zygote control socket: %r", exc)
        finally:
            self._closed = True
            for event, _ in self._replies.values():
                event.set()
            for child in self._children.values():
                child._set_exit(None)
            self._control.close()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            child = self._children.pop(message["exit"], None)
            if child is None:
                self._early_exits[message["exit"]] = message["code"]
            else:
                child._set_exit(int(message["code"]))
            return
        entry = self._replies.pop(int(message.get("id", 0)), None)
        if entry is not None:
            entry[1].append(message)
            entry[0].set()

    async def fork(self, argv: list[str], *, env: dict[str, str], cwd: str | None,
                   worker_id: str, pass_fds: tuple[int, ...]) -> ForkedProcess:
        """Fork a worker for ``argv`` (``[python, -m, snakepit_bridge, flags...]``)."""
        if argv[1:3] != WORKER_MODULE:
            raise WorkerStartError(f"worker {worker_id}: the zygote forks only "
                                   f"'python -m snakepit_bridge' workers, got {argv[:3]!r}")
        args = argv[3:]
        remap: dict[str, int] = {}
        fds: list[int] = []
        for flag in REMAPPED_FLAGS:
            if flag in args:
                fd = int(args[args.index(flag) + 1])
                if fd not in pass_fds:
                    raise WorkerStartError(f"worker {worker_id}: {flag} {fd} is not passed")
                remap[flag] = len(fds)
                fds.append(fd)
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        mine = (stdin_w, stdout_r, stderr_r)
        try:
            rid = next(self._ids)
            event, box = trio.Event(), cast(list[dict[str, Any]], [])
            self._replies[rid] = (event, box)
            message = json.dumps({"op": "fork", "id": rid, "argv": args, "env": env,
                                  "cwd": cwd, "remap": remap}).encode()
            async with self._lock:
                if self._closed:
                    raise WorkerStartError(f"worker {worker_id}: the pool's zygote is gone")
                await self._control.sendmsg([message], [(
                    socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    array.array("i", [stdin_r, stdout_w, stderr_w, *fds]))])
            await event.wait()
        except BaseException:
            self._replies.pop(rid, None)
            for fd in mine:
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)   # the worker has its own copies now
        reply = box[0] if box else {"error": "the zygote went away"}
        if "pid" in reply and self._forks_killed:
            # The zygote died after this fork and its forks were killed before its reply was
            # read: this one was not among them, and would live on, orphaned, as a worker.
            signal_group(int(reply["pid"]), signal.SIGKILL)
            reply = {"error": "the zygote went away"}
        if "pid" not in reply:
            for fd in mine:
                os.close(fd)
            raise WorkerStartError(f"worker {worker_id}: the zygote could not fork it: "
                                   f"{reply.get('error')}", details={"worker_id": worker_id})
        child = ForkedProcess(int(reply["pid"]), trio.lowlevel.FdStream(stdin_w),
                              trio.lowlevel.FdStream(stdout_r), trio.lowlevel.FdStream(stderr_r),
                              self)
        if child.pid in self._early_exits:
            child._set_exit(self._early_exits.pop(child.pid))
        else:
            self._children[child.pid] = child
        return child

    def kill_forks(self) -> None:
        """The zygote died under its forks: they go with it (their exit codes would have
        nobody to report them); their slots fork anew from the next zygote. A fork whose
        reply is read after this is killed then (:meth:`fork`)."""
        self._forks_killed = True
        for pid in list(self._children):
            signal_group(pid, signal.SIGKILL)

    async def aclose(self, grace: float) -> None:
        self._closed = True
        self._control.close()
        await self.process.terminate(grace)


class ZygoteKeeper:
    """The pool's current zygote as its workers' spawns see it (``runtime.zygote``), and its
    slot: failed starts in a row, ``degraded``, backoff (:mod:`snakepit.pool.starter`).

        zygote = await runtime.zygote.running()   # waits while the zygote is restarted
    """

    def __init__(self, slot: Any) -> None:
        self.slot = slot
        self.current: Zygote | None = None
        self._changed = trio.Event()

    @property
    def degraded(self) -> bool:
        return bool(self.slot.degraded)

    def set(self, zygote: Zygote | None) -> None:
        self.current = zygote
        self._changed.set()
        self._changed = trio.Event()

    async def running(self) -> Zygote:
        while self.current is None:
            await self._changed.wait()
        return self.current
