"""What supervisors report: child started / exited / restarted / overran its grace, gave up.

    def show(event: otp.SupervisorEvent) -> None:
        print(event.kind, event.supervisor, event.child_id, event.exit_kind)

    async with otp.Application([...], observer=show): ...

An observer is a plain function; it must be quick and must not block. One that raises is
logged and otherwise ignored: reporting never breaks supervision. Supervisors without an
explicit observer use the one of the tree they run in (a context variable the
:class:`~snakepit.otp.Application` sets), so nested supervisors report to the same place.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any, Callable, Hashable

import attrs

log = logging.getLogger("snakepit.otp")

CHILD_STARTED = "child_started"
CHILD_START_FAILED = "child_start_failed"
CHILD_EXITED = "child_exited"
CHILD_RESTARTED = "child_restarted"
CHILD_TERMINATED = "child_terminated"
CHILD_SHUTDOWN_OVERRAN = "child_shutdown_overran"
SUPERVISOR_GAVE_UP = "supervisor_gave_up"


@attrs.frozen
class SupervisorEvent:
    kind: str
    supervisor: str
    child_id: Hashable | None
    time: float
    incarnation: int = 0
    exit_kind: str | None = None          # "normal" | "shutdown" | "abnormal"
    error: BaseException | None = None
    restarts: int = 0


Observer = Callable[[SupervisorEvent], Any]

current_observer: contextvars.ContextVar[Observer | None] = contextvars.ContextVar(
    "snakepit_otp_observer", default=None
)


def emit(observer: Observer | None, event: SupervisorEvent) -> None:
    if event.kind in (CHILD_START_FAILED, SUPERVISOR_GAVE_UP, CHILD_SHUTDOWN_OVERRAN) or (
        event.kind == CHILD_EXITED and event.exit_kind == "abnormal"
    ):
        log.warning("%s: %s child=%r error=%r", event.supervisor, event.kind, event.child_id,
                    event.error)
    else:
        log.debug("%s: %s child=%r", event.supervisor, event.kind, event.child_id)
    if observer is None:
        return
    try:
        observer(event)
    except Exception:
        log.exception("supervisor observer %r failed on %s", observer, event.kind)
