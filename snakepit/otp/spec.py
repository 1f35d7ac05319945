"""Child specifications: what to start, when to restart it, how long its shutdown may take.

    spec = otp.ChildSpec(id="db", start=db, restart="permanent", shutdown=5.0)

``start`` is an ``async def`` following trio's ``nursery.start`` protocol: it calls
``task_status.started(value)`` when ready, then runs. Returning is a *normal* exit, raising
:class:`~snakepit.otp.Shutdown` (or being cancelled by its supervisor) a *shutdown*, raising
anything else an *abnormal* exit.
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
from typing import Any, Awaitable, Callable, Hashable

import attrs


class Restart(str, enum.Enum):
    """When a child is restarted: ``permanent`` always, ``transient`` only after an abnormal
    exit, ``temporary`` never (and it is dropped even when a sibling's crash stopped it)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Strategy(str, enum.Enum):
    """Which children a supervisor restarts when one of them must be restarted."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class ChildType(str, enum.Enum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"


INFINITY = "infinity"


def parse_enum(enum_cls: type[enum.Enum], value: Any, field: str) -> Any:
    """``value`` as a member of ``enum_cls``; ``ValueError``/``TypeError`` naming the field."""
    if isinstance(value, enum_cls):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}: {value!r}")
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_cls)  # type: ignore[attr-defined]
        raise ValueError(f"{field} must be one of {allowed}, got {value!r}") from None


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # objects with async __call__, bound .run methods
    return call is not None and inspect.iscoroutinefunction(call)


def _check_start(instance: Any, attribute: Any, value: Any) -> None:
    if not callable(value):
        raise TypeError(f"ChildSpec.start must be an async function, got {value!r}")
    if not _is_async_callable(value):
        raise TypeError(
            f"ChildSpec.start must be an async function (async def ...(*, task_status)), "
            f"got non-async {value!r}"
        )


def _check_id(instance: Any, attribute: Any, value: Any) -> None:
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"ChildSpec.id must be hashable, got {value!r}") from None
    if value is None:
        raise ValueError("ChildSpec.id must not be None")


def _convert_shutdown(value: Any) -> float:
    if value == INFINITY or value == math.inf:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ChildSpec.shutdown must be seconds (a number) or 'infinity', got {value!r}")
    if not value >= 0:
        raise ValueError(f"ChildSpec.shutdown must be >= 0 seconds or 'infinity', got {value!r}")
    return float(value)


def _to_restart(value: Any) -> Restart:
    return parse_enum(Restart, value, "ChildSpec.restart")  # type: ignore[no-any-return]


def _to_type(value: Any) -> ChildType:
    return parse_enum(ChildType, value, "ChildSpec.type")  # type: ignore[no-any-return]


@attrs.frozen
class ChildSpec:
    """A child of a supervisor. ``shutdown`` is the grace (seconds, or ``"infinity"``) its
    cleanup may take once cancelled; ``type="supervisor"`` marks nested supervisors."""

    id: Hashable = attrs.field(validator=_check_id)
    start: Callable[..., Awaitable[Any]] = attrs.field(validator=_check_start)
    restart: Restart = attrs.field(default=Restart.PERMANENT, converter=_to_restart)
    shutdown: float = attrs.field(default=5.0, converter=_convert_shutdown)
    type: ChildType = attrs.field(default=ChildType.WORKER, converter=_to_type)

    @classmethod
    def supervisor(cls, id: Hashable, sup: Any, **kw: Any) -> "ChildSpec":
        """A spec for a nested (dynamic) supervisor: ``ChildSpec.supervisor("pools", sup)``."""
        kw.setdefault("shutdown", INFINITY)
        return cls(id=id, start=sup.run, type=ChildType.SUPERVISOR, **kw)
