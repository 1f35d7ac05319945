"""The supervisor's policy as pure functions (no trio, no I/O), as in OTP's ``supervisor.erl``.

    window = RestartWindow(max_restarts=3, max_seconds=5.0)
    window = window.add(now)            # a new window with this restart recorded
    window.exceeded                     # True: the supervisor must give up

    plan = restart_plan("rest_for_one", ["a", "b", "c"], failed="b")
    plan.stop   # ("c",)        -- running children to stop, in this order
    plan.start  # ("b", "c")    -- children to start, in this order
"""

from __future__ import annotations

import enum
from typing import Hashable, Sequence

import attrs

from snakepit.otp.spec import Restart, Strategy


class ExitKind(str, enum.Enum):
    """Why a child stopped: returned (normal), shut down, or crashed (abnormal)."""

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    ABNORMAL = "abnormal"


def should_restart(restart: Restart, exit_kind: ExitKind) -> bool:
    """Whether a child that exited by itself is restarted (the strategy decides the rest)."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return exit_kind is ExitKind.ABNORMAL
    return False


@attrs.frozen
class RestartWindow:
    """Restart intensity: more than ``max_restarts`` restarts whose times lie within
    ``max_seconds`` of the newest (inclusive, as OTP's ``add_restart``) → give up.

    Counted per supervisor, *before* each restart attempt, failed attempts included."""

    max_restarts: int
    max_seconds: float
    times: tuple[float, ...] = ()

    def add(self, now: float) -> "RestartWindow":
        kept = tuple(t for t in self.times if now <= t + self.max_seconds)
        return attrs.evolve(self, times=kept + (now,))

    @property
    def exceeded(self) -> bool:
        return len(self.times) > self.max_restarts


@attrs.frozen
class RestartPlan:
    stop: tuple[Hashable, ...]
    start: tuple[Hashable, ...]


def restart_plan(
    strategy: Strategy | str,
    order: Sequence[Hashable],
    failed: Hashable,
    running: frozenset[Hashable] | set[Hashable] | None = None,
    temporary: frozenset[Hashable] | set[Hashable] = frozenset(),
) -> RestartPlan:
    """Which children to stop (reverse start order) and start (start order) when ``failed``
    must be restarted. ``order`` is the children's start order; ``running`` the ids that are
    currently running (default: all but ``failed``); ``temporary`` the temporary ones, which are
    stopped but never started again. Children that are not running are not stopped, but
    one_for_all / rest_for_one start every other child of their range (OTP does too)."""
    strategy = Strategy(strategy)
    if running is None:
        running = set(order) - {failed}
    idx = list(order).index(failed)
    if strategy is Strategy.ONE_FOR_ONE:
        affected = [failed]
    elif strategy is Strategy.ONE_FOR_ALL:
        affected = list(order)
    else:
        affected = list(order[idx:])
    stop = tuple(c for c in reversed(affected) if c != failed and c in running)
    start = tuple(c for c in affected if c not in temporary)
    return RestartPlan(stop=stop, start=start)


def keeps_spec(restart: Restart) -> bool:
    """Temporary children are forgotten once they stop, for whatever reason."""
    return restart is not Restart.TEMPORARY
