"""The root of a tree, run either as a context manager or as a child of your own nursery.

    app = otp.Application([otp.ChildSpec(id="db", start=db), ...], strategy="rest_for_one")
    async with app as handle:          # every child has started
        ...                            # leaving the block stops the tree in reverse order
    # or, inside an existing trio program:
    handle = await nursery.start(app.run)

Errors come out as themselves, never wrapped in an ``ExceptionGroup``: a tree that gives up
raises :class:`MaxRestartsExceeded`, one that cannot start :class:`StartError`, and an
exception (or Ctrl-C) in the ``async with`` body propagates after the tree has stopped.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Sequence

import trio

from snakepit.otp import events as ev
from snakepit.otp.running import running
from snakepit.otp.spec import ChildSpec, Strategy
from snakepit.otp.supervisor import Supervisor, SupervisorHandle


class Application:
    def __init__(self, children: Sequence[ChildSpec], *, strategy: str | Strategy =
                 "one_for_one", max_restarts: int = 3, max_seconds: float = 5.0,
                 name: str = "application", observer: ev.Observer | None = None) -> None:
        self.supervisor = Supervisor(children, strategy=strategy, max_restarts=max_restarts,
                                     max_seconds=max_seconds, name=name)
        if observer is not None and not callable(observer):
            raise TypeError(f"observer must be callable, got {observer!r}")
        self.observer = observer
        self._stack: contextlib.AsyncExitStack | None = None

    async def run(self, *, task_status: trio.TaskStatus[SupervisorHandle] =
                  trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree (``nursery.start`` protocol); every nested supervisor without an
        observer of its own reports to this application's observer."""
        if self.observer is not None:
            ev.current_observer.set(self.observer)  # this task's context, inherited below
        await self.supervisor.run(task_status=task_status)

    async def __aenter__(self) -> SupervisorHandle:
        if self._stack is not None:
            raise RuntimeError("this Application is already running")
        stack = contextlib.AsyncExitStack()
        handle: SupervisorHandle = await stack.enter_async_context(running(self.run))
        self._stack = stack
        return handle

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        stack, self._stack = self._stack, None
        assert stack is not None
        return bool(await stack.__aexit__(exc_type, exc, tb))
