"""One worker OS process from trio: spawn, readiness, output forwarding, stop, reap.

    proc = await WorkerProcess.spawn(argv, env=env, cwd=None, worker_id="default-1",
                                     nursery=nursery, registry=process_registry)
    ready = await proc.wait_ready(timeout=30.0)        # ready.port, ready.pid
    ...
    await proc.terminate(grace=6.0)                    # SIGTERM group → grace → SIGKILL; reaped

The worker gets its own process group (``start_new_session``) so stopping it reaches its
grandchildren; stdin is a pipe the host never writes (its EOF tells the worker the host is
gone); stdout and stderr are forwarded line by line to the ``snakepit.worker`` logger and read
continuously, so a chatty worker can never block on a full pipe; readiness arrives on a
dedicated inherited fd, never on stdout.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import subprocess
from typing import Any, Callable

import attrs
import trio

from snakepit.errors import WorkerStartError
from snakepit_bridge.signals import KILL, escalation, signal_group
from snakepit.logs import redact

log = logging.getLogger("snakepit.worker")

STDERR_TAIL = 50
_SEVERE = re.compile(r"\b(WARNING|ERROR|CRITICAL|FATAL)\b|^Traceback|Error:")
MAX_LINE = 64 * 1024


@attrs.frozen
class Ready:
    port: int
    pid: int
    info: dict[str, Any]


class WorkerProcess:
    def __init__(self, proc: Any, ready_stream: trio.lowlevel.FdStream,
                 worker_id: str, registry: Any, record: Any) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.worker_id = worker_id
        self._ready_stream = ready_stream
        self._registry = registry
        self._record = record
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        # Output before the readiness line is held back: if the start fails it is told once,
        # in the WorkerStartError, not also line by line in the log; once ready it is logged.
        self._held: list[tuple[int, str, bool]] | None = []
        self._pumps_done = trio.Event()
        self._pumps = 0
        self._pump_scopes: list[trio.CancelScope] = []
        self._reaped = False
        self.pipe_socket: Any = None   # the host's end of the pipe transport, if any
        self.argv: list[str] = []

    @classmethod
    async def spawn(cls, argv_for: Callable[[int], list[str]], *, env: dict[str, str],
                    cwd: str | None, worker_id: str, nursery: trio.Nursery,
                    registry: Any = None, extra_fds: tuple[int, ...] = (),
                    zygote: Any = None) -> "WorkerProcess":
        """Start the process; ``argv_for(fd)`` is its command line, given the number of the
        fd the child inherits for its readiness line. With a ``zygote``
        (:mod:`snakepit.pool.zygote`) the process is forked by it instead of spawned."""
        read_fd, write_fd = os.pipe()
        argv = argv_for(write_fd)
        # The registry keeps what ps will show: a forked worker keeps its zygote's cmdline.
        record = registry.reserve(worker_id, zygote.argv if zygote else argv) \
            if registry is not None else None
        try:
            if zygote is not None:
                proc: Any = await zygote.fork(argv, env=env, cwd=cwd, worker_id=worker_id,
                                              pass_fds=(write_fd, *extra_fds))
            else:
                proc = await trio.lowlevel.open_process(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(write_fd, *extra_fds), start_new_session=True, env=env, cwd=cwd)
        except BaseException as exc:
            os.close(read_fd)
            if registry is not None:
                registry.remove(record)
            if not isinstance(exc, OSError):
                raise
            what = "executable not found" if isinstance(exc, FileNotFoundError) else str(exc)
            raise WorkerStartError(
                f"worker {worker_id} cannot start: {argv[0]!r}: {what}",
                details={"worker_id": worker_id, "argv0": argv[0], "error": str(exc)}) from None
        finally:
            os.close(write_fd)
        if registry is not None:
            registry.record(record, proc.pid)
        self = cls(proc, trio.lowlevel.FdStream(read_fd), worker_id, registry, record)
        self.argv = argv
        for stream, is_err in ((proc.stdout, False), (proc.stderr, True)):
            self._pumps += 1
            nursery.start_soon(self._pump, stream, is_err, name=f"{worker_id} output")
        return self

    async def _pump(self, stream: Any, is_err: bool) -> None:
        """Forward lines to the log until EOF; stderr lines are also kept for errors.
        Shielded: a worker's last words while it is being stopped must reach the log too;
        ``terminate`` ends the pumps itself once the process group is dead."""
        scope = trio.CancelScope(shield=True)
        self._pump_scopes.append(scope)
        with scope:
            await self._pump_lines(stream, is_err)

    async def _pump_lines(self, stream: Any, is_err: bool) -> None:
        buf = b""
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                buf += data
                *lines, buf = buf.split(b"\n")
                if len(buf) > MAX_LINE:
                    lines.append(buf)
                    buf = b""
                for raw in lines:
                    self._line(raw, is_err)
            if buf:
                self._line(buf, is_err)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        finally:
            self._pumps -= 1
            if self._pumps == 0:
                self._pumps_done.set()

    def _line(self, raw: bytes, is_err: bool) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if is_err:
            self.stderr_tail.append(line)
        # Workers log everything to stderr; keep their own severity where it shows.
        level = logging.WARNING if _SEVERE.search(line) else logging.INFO
        if self._held is not None and len(self._held) < STDERR_TAIL:
            self._held.append((level, line, is_err))
        elif log.isEnabledFor(level):
            log.log(level, "[%s] %s", self.worker_id, redact(line))

    def _release_held(self, stderr_too: bool, level_cap: int = logging.CRITICAL) -> None:
        held, self._held = self._held or [], None
        for level, line, is_err in held:
            level = min(level, level_cap)
            if (stderr_too or not is_err) and log.isEnabledFor(level):
                log.log(level, "[%s] %s", self.worker_id, redact(line))

    async def wait_ready(self, timeout: float) -> Ready:
        """The worker's readiness line, or WorkerStartError (exit before ready / timeout)."""
        data = b""
        try:
            with trio.move_on_after(timeout) as scope:
                while b"\n" not in data:
                    chunk = await self._ready_stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
        except BaseException:
            # Cancelled while starting (usually: a sibling's failure stops the application,
            # and this worker failed the same way): its output goes to the debug log only.
            self._release_held(stderr_too=True, level_cap=logging.DEBUG)
            raise
        await self._ready_stream.aclose()
        if b"\n" in data:
            try:
                info = json.loads(data.split(b"\n", 1)[0])
                ready = Ready(port=int(info["port"]), pid=int(info.get("pid", self.pid)),
                              info=info)
                self._release_held(stderr_too=True)
                return ready
            except (ValueError, KeyError, TypeError):
                reason = f"sent a malformed readiness line {data[:200]!r}"
        elif scope.cancelled_caught:
            reason = f"did not report ready within startup_timeout={timeout} s"
        else:
            with trio.move_on_after(2.0):
                await self.proc.wait()
            reason = f"exited with code {self.proc.returncode} before reporting ready"
        with trio.move_on_after(1.0):
            await self._pumps_done.wait()   # collect the rest of its stderr
        tail = "\n".join(self.stderr_tail)
        self._release_held(stderr_too=False)   # the stderr is in the error below
        raise WorkerStartError(
            f"worker {self.worker_id} (pid {self.pid}) {reason}" +
            (f"; its stderr ends with:\n{tail}" if tail else ""),
            details={"worker_id": self.worker_id, "pid": self.pid,
                     "exit_code": self.proc.returncode, "stderr": tail})

    @property
    def returncode(self) -> int | None:
        code: int | None = self.proc.returncode
        return code

    async def wait(self) -> int:
        code: int = await self.proc.wait()
        return code

    async def terminate(self, grace: float) -> int:
        """Stop the process group by :func:`~snakepit_bridge.signals.escalation` (``grace`` 0:
        SIGKILL at once) and reap it. Safe to call more than once and from a shielded
        ``finally``."""
        if self.proc.stdin is not None:   # the fallback signal: "the host is gone"
            try:
                await self.proc.stdin.aclose()
            except trio.BrokenResourceError:
                pass
        for sigs, wait in escalation(grace):
            # Always the last step: the leader may be gone while grandchildren live on.
            if self.proc.returncode is None or sigs == KILL:
                for sig in sigs:
                    signal_group(self.pid, sig)
            if wait and self.proc.returncode is None:
                with trio.move_on_after(wait):
                    await self.proc.wait()
        code: int = await self.proc.wait()
        with trio.move_on_after(1.0):
            await self._pumps_done.wait()
        for scope in self._pump_scopes:   # a stray grandchild may hold the pipes open
            scope.cancel()
        # Our ends of its pipes: closed now, not whenever the garbage collector gets to them
        # (a crash storm would otherwise hold the fds of every dead worker). A pump still
        # reading gets ClosedResourceError, which ends it.
        for stream in (self.proc.stdout, self.proc.stderr, self._ready_stream):
            if stream is not None:
                await stream.aclose()
        if self.pipe_socket is not None:   # a worker that never got its transport
            self.pipe_socket.close()
            self.pipe_socket = None
        if not self._reaped:
            self._reaped = True
            if self._registry is not None:
                self._registry.remove(self._record)
        return code
