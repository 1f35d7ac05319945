"""Supervisors: start children in order, restart them by strategy, stop them in reverse.

    sup = otp.Supervisor([otp.ChildSpec(id="db", start=db),
                          otp.ChildSpec(id="cache", start=cache, restart="transient")],
                         strategy="one_for_all", max_restarts=3, max_seconds=5.0)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(sup.run)
        handle.which_children()
        await handle.terminate_child("cache")
        await handle.restart_child("cache")

A ``Supervisor`` is a recipe: every call of :meth:`Supervisor.run` starts a fresh tree, which
is what a parent supervisor does when it restarts it. ``run`` follows the ``nursery.start``
protocol (it reports the :class:`SupervisorHandle` once every child has started), so a
supervisor is itself a valid child ``start``. It returns when cancelled (after stopping its
children one at a time in reverse start order) and raises :class:`MaxRestartsExceeded` when
the restart intensity is exceeded, or :class:`StartError` when a child cannot start.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Iterable, Sequence

import attrs
import trio

from snakepit.otp import events as ev
from snakepit.otp.child import Incarnation
from snakepit.otp.decisions import RestartWindow, keeps_spec, restart_plan, should_restart
from snakepit.otp.errors import (ChildNotFound, ChildRunning, MaxChildrenReached,
                                 MaxRestartsExceeded, NotRunning, StartError)
from snakepit.otp.spec import ChildSpec, ChildType, Restart, Strategy, parse_enum


@attrs.frozen
class ChildInfo:
    """A snapshot of one child, as :meth:`SupervisorHandle.which_children` returns it."""

    id: Hashable
    state: str             # "running" | "starting" | "stopping" | "terminated"
    restarts: int          # times this child was restarted by the supervisor
    incarnation: int       # increases with every start
    value: Any             # what the child passed to task_status.started()
    type: str
    restart: str


# Values that are ids, never handles (small ints and strings are interned: `is` would lie).
_PLAIN = (str, bytes, int, float, bool, tuple, type(None))


class _Child:
    __slots__ = ("spec", "inc", "restarts", "starts")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.inc: Incarnation | None = None
        self.restarts = 0
        self.starts = 0

    @property
    def id(self) -> Hashable:
        return self.spec.id

    def info(self) -> ChildInfo:
        inc = self.inc
        if inc is None:
            state, value, number = "terminated", None, self.starts
        else:
            state = "stopping" if inc.stopping else ("running" if inc.started else "starting")
            value, number = inc.value, inc.number
        return ChildInfo(id=self.spec.id, state=state, restarts=self.restarts,
                         incarnation=number, value=value, type=self.spec.type.value,
                         restart=self.spec.restart.value)


def _check_intensity(max_restarts: Any, max_seconds: Any) -> None:
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int):
        raise TypeError(f"max_restarts must be an int, got {max_restarts!r}")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)):
        raise TypeError(f"max_seconds must be a number of seconds, got {max_seconds!r}")
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")


def _check_specs(children: Iterable[Any]) -> list[ChildSpec]:
    specs = list(children)
    seen: set[Hashable] = set()
    for spec in specs:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"children must be ChildSpec instances, got {spec!r}")
        if spec.id in seen:
            raise ValueError(f"duplicate child id {spec.id!r}")
        seen.add(spec.id)
    return specs


class _Tree:
    """One run of a supervisor: its children, restart window and the nursery they live in."""

    def __init__(self, recipe: "Supervisor", nursery: trio.Nursery) -> None:
        self.recipe = recipe
        self.name = recipe.name
        self.nursery = nursery
        self.observer = recipe.observer if recipe.observer is not None \
            else ev.current_observer.get()
        self.children: dict[Hashable, _Child] = {s.id: _Child(s) for s in recipe.specs}
        self.window = RestartWindow(recipe.max_restarts, recipe.max_seconds)
        self.lock = trio.Lock()
        self.running = True
        self.exits_send, self.exits_recv = trio.open_memory_channel[Incarnation](math.inf)
        self.handle = SupervisorHandle(self)

    # -- reporting --------------------------------------------------------------------------
    def emit(self, kind: str, child: _Child | None, inc: Incarnation | None = None,
             error: BaseException | None = None) -> None:
        ev.emit(self.observer, ev.SupervisorEvent(
            kind=kind, supervisor=self.name, child_id=child.id if child else None,
            time=trio.current_time(), incarnation=inc.number if inc else 0,
            exit_kind=inc.exit_kind.value if inc and inc.exit_kind else None,
            error=error if error is not None else (inc.error if inc else None),
            restarts=child.restarts if child else 0))

    # -- starting and stopping one child ----------------------------------------------------
    async def start(self, child: _Child) -> Any:
        if not self.running:
            raise NotRunning(f"supervisor {self.name!r} is not running")
        child.starts += 1
        inc = Incarnation(child.spec, child.starts, self.exits_send.send_nowait)
        child.inc = inc
        self.nursery.start_soon(inc.run, name=f"{self.name}/{child.id!r}")
        await inc.settled.wait()
        if not inc.started:
            if child.inc is inc:
                child.inc = None
            cause = inc.error or RuntimeError("stopped while starting")
            self.emit(ev.CHILD_START_FAILED, child, inc, cause)
            raise StartError(child.id, cause, self.name) from cause
        self.emit(ev.CHILD_STARTED, child, inc)
        return inc.value

    async def stop(self, child: _Child) -> None:
        inc = child.inc
        if inc is None:
            return
        await inc.stop(lambda i: self.emit(ev.CHILD_SHUTDOWN_OVERRAN, child, i))
        if child.inc is inc:
            child.inc = None
        self.emit(ev.CHILD_TERMINATED, child, inc)

    # -- reacting to exits ------------------------------------------------------------------
    async def serve(self) -> None:
        async for inc in self.exits_recv:
            async with self.lock:
                child = self.children.get(inc.spec.id)
                if child is None or child.inc is not inc or inc.stopping:
                    continue  # stale, or an exit we caused and handle where we caused it
                child.inc = None
                self.emit(ev.CHILD_EXITED, child, inc)
                assert inc.exit_kind is not None
                if should_restart(child.spec.restart, inc.exit_kind):
                    await self.restart(child.id, inc.error or inc.exit_kind)
                elif not self.keeps_exited(child.spec):
                    del self.children[child.id]

    def keeps_exited(self, spec: ChildSpec) -> bool:
        return keeps_spec(spec.restart)

    async def restart(self, failed: Hashable, reason: Any) -> None:
        while True:
            self.window = self.window.add(trio.current_time())
            if self.window.exceeded:
                self.emit(ev.SUPERVISOR_GAVE_UP, self.children.get(failed))
                raise MaxRestartsExceeded(self.name, self.recipe.max_restarts,
                                          self.recipe.max_seconds, failed, reason)
            order = list(self.children)
            plan = restart_plan(
                self.recipe.strategy, order, failed,
                running={c.id for c in self.children.values() if c.inc is not None},
                temporary={c.id for c in self.children.values()
                           if c.spec.restart is Restart.TEMPORARY})
            for cid in plan.stop:
                child = self.children[cid]
                await self.stop(child)
                if not keeps_spec(child.spec.restart):
                    del self.children[cid]
            try:
                for cid in plan.start:
                    child = self.children[cid]
                    child.restarts += 1
                    await self.start(child)
                    self.emit(ev.CHILD_RESTARTED, child, child.inc)
            except StartError as exc:  # a failed restart counts as a restart, then retry
                failed, reason = exc.child_id, exc.cause
                continue
            return

    # -- the whole tree ---------------------------------------------------------------------
    async def start_all(self) -> None:
        for child in list(self.children.values()):
            try:
                await self.start(child)
            except StartError:
                with trio.CancelScope(shield=True):
                    await self.stop_all()
                raise

    async def stop_all(self) -> None:
        """Stop every child, one at a time in reverse start order. Called shielded."""
        self.running = False
        while any(c.inc is not None for c in self.children.values()):
            for child in reversed(list(self.children.values())):
                await self.stop(child)


class SupervisorHandle:
    """Runtime operations on a running supervisor (what ``run`` reports as started)."""

    def __init__(self, tree: _Tree) -> None:
        self._tree = tree

    @property
    def name(self) -> str:
        return self._tree.name

    @property
    def running(self) -> bool:
        return self._tree.running

    def which_children(self) -> list[ChildInfo]:
        return [c.info() for c in self._tree.children.values()]

    def count_children(self) -> dict[str, int]:
        children = list(self._tree.children.values())
        return {
            "specs": len(children),
            "active": sum(1 for c in children if c.inc is not None),
            "supervisors": sum(1 for c in children if c.spec.type is ChildType.SUPERVISOR),
            "workers": sum(1 for c in children if c.spec.type is ChildType.WORKER),
        }

    def _child(self, ref: Any) -> _Child:
        tree = self._tree
        if not tree.running:
            raise NotRunning(f"supervisor {tree.name!r} is not running")
        try:
            return tree.children[ref]
        except (KeyError, TypeError):
            pass
        if not isinstance(ref, _PLAIN):   # a child's handle: the object it passed to started
            for child in tree.children.values():
                if child.inc is not None and child.inc.value is ref:
                    return child
        raise ChildNotFound(f"supervisor {tree.name!r} has no child {ref!r}")

    async def terminate_child(self, ref: Any) -> None:
        """Stop a child (within its grace); it stays terminated until ``restart_child``.
        Temporary children (and all dynamic children) are forgotten."""
        tree = self._tree
        async with tree.lock:
            child = self._child(ref)
            await tree.stop(child)
            if not tree.keeps_exited(child.spec) or tree.recipe.dynamic:
                tree.children.pop(child.id, None)

    async def restart_child(self, ref: Any) -> Any:
        """Start a terminated child again; returns its started value."""
        tree = self._tree
        async with tree.lock:
            child = self._child(ref)
            if child.inc is not None:
                raise ChildRunning(f"child {child.id!r} is running")
            return await tree.start(child)

    async def delete_child(self, ref: Any) -> None:
        """Forget a terminated child's spec."""
        tree = self._tree
        async with tree.lock:
            child = self._child(ref)
            if child.inc is not None:
                raise ChildRunning(f"child {child.id!r} is running; terminate it first")
            del tree.children[child.id]

    async def start_child(self, spec: ChildSpec) -> Any:
        """Add a child at the end and start it; returns the value it passed to ``started``."""
        tree = self._tree
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"start_child needs a ChildSpec, got {spec!r}")
        async with tree.lock:
            if not tree.running:
                raise NotRunning(f"supervisor {tree.name!r} is not running")
            if spec.id in tree.children:
                raise ValueError(f"supervisor {tree.name!r} already has a child {spec.id!r}")
            limit = tree.recipe.max_children
            if limit is not None and len(tree.children) >= limit:
                raise MaxChildrenReached(
                    f"supervisor {tree.name!r} already has max_children={limit} children")
            child = _Child(spec)
            tree.children[spec.id] = child
            try:
                return await tree.start(child)
            except BaseException:
                if child.inc is None:
                    tree.children.pop(spec.id, None)
                raise


class Supervisor:
    """A static supervisor recipe. See the module docstring."""

    dynamic = False
    max_children: int | None = None

    def __init__(self, children: Sequence[ChildSpec] = (), *, strategy: str | Strategy =
                 "one_for_one", max_restarts: int = 3, max_seconds: float = 5.0,
                 name: str = "supervisor", observer: ev.Observer | None = None) -> None:
        self.specs = _check_specs(children)
        self.strategy: Strategy = parse_enum(Strategy, strategy, "strategy")
        _check_intensity(max_restarts, max_seconds)
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        self.name = name
        if observer is not None and not callable(observer):
            raise TypeError(f"observer must be callable, got {observer!r}")
        self.observer = observer

    def child_spec(self, id: Hashable | None = None, **kw: Any) -> ChildSpec:
        """This supervisor as a child of another: ``parent_children.append(sup.child_spec())``."""
        return ChildSpec.supervisor(self.name if id is None else id, self, **kw)

    async def run(self, *, task_status: trio.TaskStatus[SupervisorHandle] =
                  trio.TASK_STATUS_IGNORED) -> None:
        error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            tree = _Tree(self, nursery)
            try:
                await tree.start_all()
                task_status.started(tree.handle)
                await tree.serve()
            except (MaxRestartsExceeded, StartError) as exc:
                error = exc
            finally:
                with trio.CancelScope(shield=True):
                    await tree.stop_all()
        if error is not None:
            raise error

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.strategy.value}>"


class DynamicSupervisor(Supervisor):
    """one_for_one over children started at run time; they stop concurrently.

        dyn = otp.DynamicSupervisor(max_children=10)
        handle = await nursery.start(dyn.run)
        worker = await handle.start_child(otp.ChildSpec(id="w1", start=worker))
        await handle.terminate_child("w1")      # or terminate_child(worker)
    """

    dynamic = True

    def __init__(self, *, max_children: int | None = None, max_restarts: int = 3,
                 max_seconds: float = 5.0, name: str = "dynamic_supervisor",
                 observer: ev.Observer | None = None) -> None:
        super().__init__((), strategy=Strategy.ONE_FOR_ONE, max_restarts=max_restarts,
                         max_seconds=max_seconds, name=name, observer=observer)
        if max_children is not None:
            if isinstance(max_children, bool) or not isinstance(max_children, int):
                raise TypeError(f"max_children must be an int or None, got {max_children!r}")
            if max_children < 0:
                raise ValueError(f"max_children must be >= 0, got {max_children}")
        self.max_children = max_children

    async def run(self, *, task_status: trio.TaskStatus[SupervisorHandle] =
                  trio.TASK_STATUS_IGNORED) -> None:
        error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            tree = _DynamicTree(self, nursery)
            try:
                task_status.started(tree.handle)
                await tree.serve()
            except MaxRestartsExceeded as exc:
                error = exc
            finally:
                with trio.CancelScope(shield=True):
                    await tree.stop_all()
        if error is not None:
            raise error


class _DynamicTree(_Tree):
    def keeps_exited(self, spec: ChildSpec) -> bool:
        return False  # a dynamic child that is not restarted is gone

    async def stop_all(self) -> None:
        """Dynamic children stop concurrently, each within its own grace."""
        self.running = False
        while any(c.inc is not None for c in self.children.values()):
            async with trio.open_nursery() as nursery:
                for child in list(self.children.values()):
                    nursery.start_soon(self.stop, child)


