"""Errors of the supervision core."""

from __future__ import annotations

from typing import Any, Hashable


class OTPError(Exception):
    """Base of the errors raised by :mod:`snakepit.otp`."""


class Shutdown(Exception):
    """Raise from a child to exit with reason *shutdown* (not restarted unless permanent).

        async def worker(*, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()
            raise otp.Shutdown("done for good")
    """


class StartError(OTPError):
    """A child failed to start; ``child_id`` names it and ``__cause__`` / ``cause`` is why."""

    def __init__(self, child_id: Hashable, cause: BaseException, supervisor: str = "") -> None:
        where = f" (supervisor {supervisor!r})" if supervisor else ""
        super().__init__(f"child {child_id!r} failed to start{where}: {cause!r}")
        self.child_id = child_id
        self.cause = cause
        self.supervisor = supervisor


class MaxRestartsExceeded(OTPError):
    """More than ``max_restarts`` restarts within ``max_seconds``: the supervisor gave up."""

    def __init__(self, supervisor: str, max_restarts: int, max_seconds: float,
                 last_child: Hashable, last_reason: Any) -> None:
        super().__init__(
            f"supervisor {supervisor!r}: more than {max_restarts} restarts in {max_seconds} s "
            f"(last: child {last_child!r}, reason {last_reason!r})"
        )
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.last_child = last_child
        self.last_reason = last_reason


class MaxChildrenReached(OTPError):
    """A dynamic supervisor already runs ``max_children`` children."""


class AlreadyRegistered(OTPError):
    """A unique registry key is taken (``key`` and the current ``value`` are attached)."""

    def __init__(self, key: Hashable, value: Any) -> None:
        super().__init__(f"{key!r} is already registered")
        self.key = key
        self.value = value


class ChildNotFound(OTPError, LookupError):
    """No child with that id under this supervisor."""


class ChildRunning(OTPError):
    """The operation needs a terminated child (restart_child / delete_child on a running one)."""


class NotRunning(OTPError):
    """What this handle or name refers to (a supervisor, a GenServer) is not running (any
    more), or no server is registered under the name."""


class ServerCrashed(OTPError):
    """The GenServer crashed while this request was waiting (or stopped with an abnormal
    reason). ``cause`` (also ``__cause__`` when it is an exception) is why.

        try:
            await otp.call(ref, "get")
        except otp.ServerCrashed as exc:
            print(exc.server, repr(exc.cause))     # counter ZeroDivisionError(...)
    """

    def __init__(self, server: Hashable, cause: Any) -> None:
        super().__init__(f"server {server!r} crashed: {cause!r}")
        self.server = server
        self.cause = cause
        if isinstance(cause, BaseException):
            self.__cause__ = cause


class CallTimeout(OTPError, TimeoutError):
    """No reply within ``timeout`` seconds; the server keeps running and its late reply is
    dropped."""

    def __init__(self, server: Hashable, request: Any, timeout: float) -> None:
        super().__init__(f"server {server!r} did not reply to {request!r} within {timeout} s")
        self.server = server
        self.request = request
        self.timeout = timeout
