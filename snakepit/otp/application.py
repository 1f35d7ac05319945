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

from types import TracebackType
from typing import Any, Sequence

import trio

from snakepit.otp import events as ev
from snakepit.otp.spec import ChildSpec, Strategy
from snakepit.otp.supervisor import Supervisor, SupervisorHandle


def unwrap_group(exc: BaseException) -> BaseException:
    """The single exception inside (nested) one-element exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Application:
    def __init__(self, children: Sequence[ChildSpec], *, strategy: str | Strategy =
                 "one_for_one", max_restarts: int = 3, max_seconds: float = 5.0,
                 name: str = "application", observer: ev.Observer | None = None) -> None:
        self.supervisor = Supervisor(children, strategy=strategy, max_restarts=max_restarts,
                                     max_seconds=max_seconds, name=name)
        if observer is not None and not callable(observer):
            raise TypeError(f"observer must be callable, got {observer!r}")
        self.observer = observer
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[SupervisorHandle] =
                  trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree (``nursery.start`` protocol); every nested supervisor without an
        observer of its own reports to this application's observer."""
        if self.observer is not None:
            ev.current_observer.set(self.observer)  # this task's context, inherited below
        await self.supervisor.run(task_status=task_status)

    async def __aenter__(self) -> SupervisorHandle:
        if self._nursery_cm is not None:
            raise RuntimeError("this Application is already running")
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        try:
            handle: SupervisorHandle = await nursery.start(self.run)
        except BaseException as exc:
            cm, self._nursery_cm = self._nursery_cm, None
            try:
                await cm.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseException as group:
                raise unwrap_group(group) from None
            raise
        self._nursery = nursery
        return handle

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        cm, nursery = self._nursery_cm, self._nursery
        self._nursery_cm = self._nursery = None
        assert cm is not None and nursery is not None
        nursery.cancel_scope.cancel()
        try:
            return bool(await cm.__aexit__(exc_type, exc, tb))
        except BaseException as group:
            inner = unwrap_group(group)
            if inner is exc:
                return False  # the body's own exception: let it propagate as is
            raise inner from None
