"""Probe children whose faults a test injects: ``crash()``, ``exit_normally()``, ``shutdown()``.

    probes = testing.probes("a", "b")                  # {"a": FaultyChild, "b": FaultyChild}
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=p.start) for i, p in probes.items()])
    async with otp.running(sup.run):
        probes["a"].crash()                            # its running incarnation raises
        await trio.testing.wait_all_tasks_blocked()
        probes["a"].incarnations                       # -> 2: the supervisor restarted it

A probe can wrap any real child (a GenServer's ``start_link``, a nested ``sup.run``): it runs
it and makes it fail on demand, passing its started value through:

    counter = testing.FaultyChild("counter", Counter.start_link(0))
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Hashable

import trio

from snakepit.otp.errors import Shutdown
from snakepit.otp.running import unwrap_group

FAULT_KINDS = ("crash", "normal", "shutdown")


class InjectedFault(RuntimeError):
    """What a probe raises by default when told to ``crash()``."""


class _Run:
    """One incarnation: set ``fault`` and ``event`` to make it end."""

    __slots__ = ("event", "fault", "error")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.fault: str | None = None
        self.error: BaseException | None = None

    def end(self, fault: str, error: BaseException | None = None) -> None:
        if self.fault is None:
            self.fault, self.error = fault, error
            self.event.set()


class FaultyChild:
    """A child whose running incarnation fails when told to. ``start`` is a valid
    ``ChildSpec.start``; ``incarnations`` counts its starts; ``journal`` (a list shared by
    the probes of one :func:`probes` call) records ``("start", id)`` and ``("stop", id)`` — a
    stop is a cancellation by its supervisor, not an exit of its own."""

    def __init__(self, id: Hashable, start: Callable[..., Awaitable[Any]] | None = None, *,
                 journal: list[tuple[str, Hashable]] | None = None) -> None:
        self.id = id
        self.wrapped = start
        self.journal: list[tuple[str, Hashable]] = journal if journal is not None else []
        self.incarnations = 0
        self._run: _Run | None = None
        self._started = False

    @property
    def running(self) -> bool:
        """Started and not yet ended."""
        return self._run is not None and self._started and self._run.fault is None

    def reset(self) -> None:
        """Forget every incarnation (between two ``trio.run``s; not while it runs)."""
        self.incarnations, self._run, self._started = 0, None, False
        self.journal.clear()

    def crash(self, exc: BaseException | None = None) -> None:
        """The running incarnation raises ``exc`` (default :class:`InjectedFault`)."""
        self._current("crash").end("crash", exc or InjectedFault(f"fault injected into "
                                                                 f"{self.id!r}"))

    def exit_normally(self) -> None:
        """The running incarnation returns (a *normal* exit)."""
        self._current("exit_normally").end("normal")

    def shutdown(self) -> None:
        """The running incarnation raises ``otp.Shutdown`` (a *shutdown* exit)."""
        self._current("shutdown").end("shutdown")

    def inject(self, kind: str) -> None:
        """``inject("crash" | "normal" | "shutdown")``: the fault of that kind."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        {"crash": self.crash, "normal": self.exit_normally, "shutdown": self.shutdown}[kind]()

    def _current(self, what: str) -> _Run:
        if not self.running:
            raise RuntimeError(f"{what}(): probe {self.id!r} is not running")
        assert self._run is not None
        return self._run

    async def start(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        run = self._run = _Run()
        self._started = False
        self.incarnations += 1
        self.journal.append(("start", self.id))
        try:
            if self.wrapped is None:
                self._started = True
                task_status.started(self)
                await run.event.wait()
            else:
                await self._run_wrapped(run, task_status)
        except BaseException as exc:
            if run.fault is None and _is_cancellation(exc):
                self.journal.append(("stop", self.id))
            raise
        finally:
            run.end("gone")
        if run.fault == "crash":
            assert run.error is not None
            raise run.error
        if run.fault == "shutdown":
            raise Shutdown(f"probe {self.id!r} shut down")

    async def _run_wrapped(self, run: _Run, task_status: trio.TaskStatus[Any]) -> None:
        async def wrapped(*, task_status: trio.TaskStatus[Any]) -> None:
            assert self.wrapped is not None
            await self.wrapped(task_status=task_status)
            run.end("normal")          # the real child returned by itself

        try:
            async with trio.open_nursery() as nursery:
                value = await nursery.start(wrapped)
                self._started = True
                task_status.started(value)
                await run.event.wait()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:   # the real child's own error, as itself
            raise unwrap_group(group) from None

    def __repr__(self) -> str:
        return f"<FaultyChild {self.id!r} incarnations={self.incarnations}>"


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


def probes(*ids: Hashable) -> dict[Hashable, FaultyChild]:
    """``{id: FaultyChild}`` for each id, sharing one journal (start/stop order)."""
    if len(set(ids)) != len(ids):
        raise ValueError(f"probe ids must be unique, got {ids!r}")
    journal: list[tuple[str, Hashable]] = []
    return {i: FaultyChild(i, journal=journal) for i in ids}
