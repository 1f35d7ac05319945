"""One incarnation of a child: its task, its own cancel scope, its shutdown with a grace.

Each child runs in a *shielded* cancel scope of its own, so that a cancellation of the
supervisor does not reach all children at once: the supervisor cancels them one by one, in
reverse start order. Inside the child, :func:`shielded_cleanup` gives cleanup code the
shutdown grace of its spec as a deadline:

    async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
        proc = await spawn()
        task_status.started(proc)
        try:
            await proc.wait()
        finally:
            with otp.shielded_cleanup():
                await proc.terminate()
"""

from __future__ import annotations

import contextvars
import math
from typing import Any, Callable

import trio

from snakepit.otp.decisions import ExitKind
from snakepit.otp.errors import Shutdown
from snakepit.otp.spec import ChildSpec

_grace: contextvars.ContextVar[float] = contextvars.ContextVar("snakepit_otp_grace", default=5.0)


def shutdown_grace() -> float:
    """The shutdown grace (seconds; ``math.inf`` for ``"infinity"``) of the running child."""
    return _grace.get()


def shielded_cleanup(grace: float | None = None) -> trio.CancelScope:
    """A shielded cancel scope whose deadline is the child's shutdown grace from now."""
    g = shutdown_grace() if grace is None else grace
    deadline = math.inf if g == math.inf else trio.current_time() + g
    return trio.CancelScope(shield=True, deadline=deadline)


class _Status(trio.TaskStatus[Any]):
    """The ``task_status`` a child receives; records the value and wakes the supervisor."""

    def __init__(self, inc: "Incarnation") -> None:
        self._inc = inc

    def started(self, value: Any = None) -> None:
        inc = self._inc
        if inc.started:
            raise RuntimeError("called 'started' twice on the same task status")
        inc.started = True
        inc.value = value
        inc.settled.set()


class Incarnation:
    """A child's current run. Created by the supervisor, which then spawns :meth:`run`."""

    def __init__(self, spec: ChildSpec, number: int,
                 on_exit: Callable[["Incarnation"], None]) -> None:
        self.spec = spec
        self.number = number
        self.scope = trio.CancelScope(shield=True)
        self.settled = trio.Event()   # started, or exited before starting
        self.done = trio.Event()
        self.started = False
        self.stopping = False
        self.value: Any = None
        self.exit_kind: ExitKind | None = None
        self.error: BaseException | None = None
        self._on_exit = on_exit

    async def run(self) -> None:
        _grace.set(self.spec.shutdown)
        kind = ExitKind.ABNORMAL
        try:
            with self.scope:
                await self.spec.start(task_status=_Status(self))
            if self.stopping or self.scope.cancelled_caught:
                kind = ExitKind.SHUTDOWN
            elif not self.started:
                self.error = RuntimeError("child returned without calling task_status.started()")
            else:
                kind = ExitKind.NORMAL
        except Shutdown as exc:
            kind, self.error = ExitKind.SHUTDOWN, exc
        except Exception as exc:  # an abnormal exit; BaseExceptions (Ctrl-C) propagate
            self.error = exc
        finally:
            self.exit_kind = kind
            self.settled.set()
            self.done.set()
            self._on_exit(self)

    async def stop(self, on_overrun: Callable[["Incarnation"], None]) -> None:
        """Cancel the child and wait for it; report (never abandon) one that overruns."""
        self.stopping = True
        self.scope.cancel()
        if self.done.is_set():
            return
        with trio.move_on_after(self.spec.shutdown):
            await self.done.wait()
        if not self.done.is_set():
            on_overrun(self)
            await self.done.wait()
