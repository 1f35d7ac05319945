"""``check_tree``: run a real supervision tree, inject a fault schedule, compare with a model.

    probes = testing.probes("a", "b", "c")
    sup = otp.Supervisor([otp.ChildSpec(id=i, start=p.start) for i, p in probes.items()],
                         strategy="rest_for_one", max_restarts=3, max_seconds=5.0)
    model = testing.Model(["a", "b", "c"], strategy="rest_for_one",
                          max_restarts=3, max_seconds=5.0)
    trio.run(testing.check_tree, sup, probes, [testing.Fault(0.5, "b", "crash")], model,
             clock=trio.testing.MockClock(autojump_threshold=0))
"""

from __future__ import annotations

import itertools
from typing import Any, Hashable, Mapping, Sequence

import trio
import trio.testing

from snakepit.otp.errors import MaxRestartsExceeded
from snakepit.otp.running import unwrap_group
from snakepit.otp.spec import ChildSpec
from snakepit.otp.supervisor import DynamicSupervisor, Supervisor, SupervisorHandle
from snakepit.otp.testing.faults import Fault
from snakepit.otp.testing.model import Event, Model
from snakepit.otp.testing.probes import FaultyChild


class _Tree:
    """The supervisor under test, run so that its giving up does not cancel the driver."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.gave_up: MaxRestartsExceeded | None = None
        self.failed: BaseException | None = None

    async def run(self, *, task_status: trio.TaskStatus[SupervisorHandle] =
                  trio.TASK_STATUS_IGNORED) -> None:
        started = False

        def report(value: SupervisorHandle) -> None:
            nonlocal started
            started = True
            task_status.started(value)

        status = _Forward(report)
        try:
            await self.supervisor.run(task_status=status)
        except BaseException as exc:
            error = unwrap_group(exc)
            if not started or isinstance(error, (trio.Cancelled, KeyboardInterrupt)):
                raise
            if isinstance(error, MaxRestartsExceeded):
                self.gave_up = error     # the trap: recorded here, the driver carries on
            else:
                self.failed = error


class _Forward(trio.TaskStatus[Any]):
    def __init__(self, report: Any) -> None:
        self._report = report

    def started(self, value: Any = None) -> None:
        self._report(value)


async def check_tree(supervisor: Supervisor, probes: Mapping[Hashable, FaultyChild],
                     schedule: Sequence[Fault], model: Model) -> None:
    """Run ``supervisor`` on the current trio clock, apply ``schedule`` to ``probes`` and
    raise ``AssertionError`` (a step-by-step account) when the incarnations, the order of
    stops and starts (probes from one :func:`probes` call share a journal), which probes run,
    or the moment the supervisor gives up differ from ``model``. Resets the probes and the
    model first, so one supervisor/probes/model triple serves many ``trio.run``s. A
    ``DynamicSupervisor`` gets the probes as children, in the model's order."""
    _check_arguments(supervisor, probes, schedule, model)
    for probe in probes.values():
        probe.reset()
    model.reset()
    journals = {id(p.journal) for p in probes.values()}
    journal = next(iter(probes.values())).journal if len(journals) == 1 else None
    report = _Report(model, probes, journal,
                     concurrent_stops=isinstance(supervisor, DynamicSupervisor))
    tree = _Tree(supervisor)
    try:
        await _drive(supervisor, probes, schedule, model, report, tree)
    except BaseExceptionGroup as group:   # the AssertionError as itself (hypothesis shrinks it)
        raise unwrap_group(group) from None
    alive = [i for i, p in probes.items() if p.running]
    assert not alive, f"check_tree: probes {alive!r} still run after the tree stopped"


async def _drive(supervisor: Supervisor, probes: Mapping[Hashable, FaultyChild],
                 schedule: Sequence[Fault], model: Model, report: "_Report", tree: _Tree
                 ) -> None:
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(tree.run)
        if isinstance(supervisor, DynamicSupervisor):
            for leaf in model.leaves():
                await handle.start_child(ChildSpec(id=leaf, start=probes[leaf].start,
                                                   restart=model.specs[leaf]))
        await trio.testing.wait_all_tasks_blocked()
        report.step("(start)", [("start", leaf) for leaf in model.leaves()], tree)
        for n, fault in enumerate(schedule, 1):
            if tree.gave_up is not None or tree.failed is not None:
                report.not_applied(schedule[n - 1:])
                break
            await trio.sleep(fault.delay)
            probe, expected_running = probes[fault.child], model.is_running(fault.child)
            if probe.running != expected_running:
                report.fail(fault, f"probe running: {probe.running}",
                            f"probe running: {expected_running}", schedule[n:])
            if not probe.running:
                report.skipped(fault)
                continue
            now = trio.current_time()
            report.mark()
            probe.inject(fault.kind)
            await trio.testing.wait_all_tasks_blocked()
            model.apply(fault.child, fault.kind, now)
            report.step(fault, model.events, tree, schedule[n:])
        nursery.cancel_scope.cancel()


def _check_arguments(supervisor: Any, probes: Any, schedule: Any, model: Any) -> None:
    if not isinstance(supervisor, Supervisor):
        raise TypeError(f"check_tree: supervisor must be an otp.Supervisor or "
                        f"DynamicSupervisor, got {supervisor!r}")
    if not isinstance(model, Model):
        raise TypeError(f"check_tree: model must be a testing.Model, got {model!r}")
    if not isinstance(probes, Mapping) or not probes or \
            not all(isinstance(p, FaultyChild) for p in probes.values()):
        raise TypeError(f"check_tree: probes must be a non-empty dict id -> FaultyChild, "
                        f"got {probes!r}")
    if set(probes) != set(model.leaves()):
        raise ValueError(f"check_tree: the probes {sorted(probes, key=repr)!r} and the model's "
                         f"children {sorted(model.leaves(), key=repr)!r} differ")
    if isinstance(supervisor, DynamicSupervisor) and len(model.leaves()) != len(model.specs):
        raise ValueError("check_tree: a DynamicSupervisor's model cannot nest models")
    for fault in schedule:
        if not isinstance(fault, Fault) or fault.child not in probes:
            raise ValueError(f"check_tree: schedule items must be Faults on the probes "
                             f"{sorted(probes, key=repr)!r}, got {fault!r}")


class _Report:
    """The steps so far, as lines a person can follow; raises on the first difference."""

    def __init__(self, model: Model, probes: Mapping[Hashable, FaultyChild],
                 journal: list[Event] | None, concurrent_stops: bool) -> None:
        self.model, self.probes, self.journal = model, probes, journal
        self.concurrent_stops = concurrent_stops   # a dynamic supervisor's: in any order
        self.lines: list[str] = []
        self.start_time = trio.current_time()
        self.mark_at = 0

    def mark(self) -> None:
        self.mark_at = len(self.journal) if self.journal is not None else 0

    def _head(self, what: Any) -> str:
        label = what if isinstance(what, str) else f"{what.kind} {what.child!r}"
        return f"  {len(self.lines):>4}  t={trio.current_time() - self.start_time:<8.3f} " \
               f"{label:<22}"

    def step(self, what: Any, events: list[Event], tree: _Tree,
             rest: Sequence[Fault] = ()) -> None:
        model = self.model
        expected = _state(model.incarnations(), self._events(events),
                          {c for c in model.leaves() if model.is_running(c)},
                          None if model.alive else "gives up")
        observed = _state({i: p.incarnations for i, p in self.probes.items()},
                          self._events(self.journal[self.mark_at:] if self.journal else []),
                          {i for i, p in self.probes.items() if p.running},
                          _outcome(tree))
        if expected != observed:
            self.fail(what, _show(observed), _show(expected), rest)
        self.lines.append(self._head(what) + _show(observed))

    def _events(self, events: list[Event]) -> list[Event] | None:
        """The events to compare: none without a shared journal; each run of stops sorted
        when they happen concurrently."""
        if self.journal is None:
            return None
        if not self.concurrent_stops:
            return list(events)
        out: list[Event] = []
        for is_stop, run in itertools.groupby(events, key=lambda e: e[0] == "stop"):
            out.extend(sorted(run, key=lambda e: repr(e[1])) if is_stop else run)
        return out

    def skipped(self, fault: Fault) -> None:
        self.lines.append(self._head(fault) + "skipped: the probe is not running")

    def not_applied(self, rest: Sequence[Fault]) -> None:
        self.lines.append(f"  not applied (the supervisor is gone): {list(rest)!r}")

    def fail(self, what: Any, observed: str, expected: str, rest: Sequence[Fault]) -> None:
        model = self.model
        lines = [f"check_tree: the tree differs from the model at step {len(self.lines)} "
                 f"({what!r})",
                 f"  model: {model!r}",
                 "  step  time       fault                 incarnations; -stopped +started; "
                 "running",
                 *self.lines,
                 self._head(what) + "<- here",
                 f"        expected: {expected}",
                 f"        observed: {observed}"]
        if rest:
            lines.append(f"  not applied: {list(rest)!r}")
        raise AssertionError("\n".join(lines))


def _state(incarnations: dict[Hashable, int], events: list[Event] | None,
           running: set[Hashable], outcome: str | None) -> tuple[Any, ...]:
    return (dict(sorted(incarnations.items(), key=lambda kv: repr(kv[0]))), events,
            sorted(running, key=repr), outcome)


def _show(state: tuple[Any, ...]) -> str:
    incarnations, events, running, outcome = state
    parts = [" ".join(f"{c}={n}" for c, n in incarnations.items())]
    if events is not None:
        parts.append(" ".join(("+" if what == "start" else "-") + str(c) for what, c in events)
                     or "(no stops or starts)")
    parts.append("running: " + (" ".join(map(str, running)) or "none"))
    if outcome is not None:
        parts.append(f"supervisor {outcome}")
    return "; ".join(parts)


def _outcome(tree: _Tree) -> str | None:
    if tree.gave_up is not None:
        return "gives up"
    if tree.failed is not None:
        return f"failed: {tree.failed!r}"
    return None
