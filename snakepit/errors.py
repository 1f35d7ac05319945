"""Every error snakepit raises is a :class:`SnakepitError`.

    try:
        await app.execute("error_demo", {"error_type": "value"})
    except snakepit.ToolError as e:
        print(e.category, e.remote_type, e.message)   # tool ValueError ...

Errors that come from a worker carry the remote exception's type name and traceback;
``details`` is a JSON-like dict with error-specific fields (e.g. ``details["tool"]``).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = [
    "SnakepitError",
    "ToolError",
    "UnknownToolError",
    "InvalidArgumentsError",
    "UnserializableResultError",
    "RequestTimeout",
    "QueueTimeout",
    "PoolSaturated",
    "WorkerBusy",
    "SessionWorkerUnavailable",
    "WorkerCrashed",
    "WorkerStartError",
    "ShuttingDown",
    "PoolNotFound",
    "PoolNotReady",
    "SessionNotFound",
    "SessionUpdateFailed",
    "QuotaExceeded",
    "InvalidVariable",
    "ConfigError",
    "AlreadyRegistered",
    "TransportError",
    "error_from_wire",
]


class SnakepitError(Exception):
    """Base of every snakepit error.

    ``category`` is a short machine-readable string (the wire's ``ErrorInfo.category`` for
    remote errors), ``message`` the human text, ``details`` a dict of extra facts,
    ``remote_type`` / ``remote_traceback`` the worker-side exception's class name and traceback.
    """

    category: str = "snakepit"

    def __init__(
        self,
        message: str,
        *,
        category: str | None = None,
        details: Mapping[str, Any] | None = None,
        remote_type: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if category is not None:
            self.category = category
        self.details: dict[str, Any] = dict(details or {})
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        if self.remote_type:
            return f"{self.remote_type}: {self.message}"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, category={self.category!r})"

    def __reduce__(self) -> Any:  # picklable, so errors survive Client's thread hop intact
        return (
            _rebuild,
            (type(self), self.message, self.category, self.details, self.remote_type,
             self.remote_traceback),
        )


def _rebuild(cls: type[SnakepitError], message: str, category: str, details: dict[str, Any],
             remote_type: str | None, remote_traceback: str | None) -> SnakepitError:
    err = cls.__new__(cls)
    SnakepitError.__init__(err, message, category=category, details=details,
                           remote_type=remote_type, remote_traceback=remote_traceback)
    return err


class ToolError(SnakepitError):
    """The tool raised; ``remote_type`` is its exception class name (e.g. ``"ValueError"``)."""

    category = "tool"


class UnknownToolError(SnakepitError):
    """No such tool; ``details["available"]`` lists the tools the worker has."""

    category = "unknown_tool"


class InvalidArgumentsError(SnakepitError):
    """Arguments missing, unexpected or of the wrong type (or a stream-only tool via execute)."""

    category = "invalid_arguments"


class UnserializableResultError(SnakepitError):
    """The tool returned a value that cannot be sent as JSON or a blob."""

    category = "unserializable_result"


class RequestTimeout(SnakepitError):
    """The call did not finish within its timeout; ``details["tool"]``, ``details["timeout"]``."""

    category = "timeout"


class DeadlinePassed(RequestTimeout):
    """Internal: the caller's deadline passed while its call waited (for a worker, or for the
    worker's answer, which the worker was told to cancel). The pool raises a RequestTimeout
    naming the tool and its timeout in its place."""


class QueueTimeout(SnakepitError):
    """The request waited longer than ``queue_timeout`` for a worker; it never ran."""

    category = "queue_timeout"


class PoolSaturated(SnakepitError):
    """The pool's queue is full (``max_queue_size``)."""

    category = "pool_saturated"


class WorkerBusy(SnakepitError):
    """``strict_fail_fast`` affinity: the session's worker is busy."""

    category = "worker_busy"


class SessionWorkerUnavailable(SnakepitError):
    """Strict affinity: the worker the session is bound to is gone. The session fails this
    way until it is re-bound (``await app.sessions.rebind(id)``, keeping its data) or deleted
    (``await app.sessions.delete(id)``); :meth:`gone` builds it with that advice."""

    category = "session_worker_unavailable"

    @classmethod
    def gone(cls, session_id: str | None, worker: str, pool: str) -> "SessionWorkerUnavailable":
        """The error for a call of ``session_id`` whose worker ``worker`` is gone."""
        sid = repr(session_id) if session_id is not None else "this session"
        return cls(f"worker {worker} of session {sid} (pool {pool!r}) is gone, and strict "
                   f"affinity keeps the session on it: every call of the session fails until "
                   f"`await app.sessions.rebind({sid})` binds it to another worker (keeping "
                   f"its data; its state in the old worker is lost) or "
                   f"`await app.sessions.delete({sid})` ends it",
                   details={"pool": pool, "session_id": session_id, "worker": worker})


class WorkerCrashed(SnakepitError):
    """The worker process died (or stopped answering) while serving the call."""

    category = "worker_crashed"


class WorkerStartError(SnakepitError):
    """A worker process could not be started; ``details["stderr"]`` has its last lines."""

    category = "worker_start"


class ShuttingDown(SnakepitError):
    """The application (or pool) is stopping; the call was not (or not fully) served."""

    category = "shutting_down"


class PoolNotFound(SnakepitError):
    category = "pool_not_found"


class PoolNotReady(SnakepitError):
    category = "pool_not_ready"


class SessionNotFound(SnakepitError):
    category = "session_not_found"


class SessionUpdateFailed(SnakepitError):
    category = "session_update_failed"


class QuotaExceeded(SnakepitError):
    """A session quota was hit; ``details["quota"]`` and ``details["limit"]``."""

    category = "quota_exceeded"


class InvalidVariable(SnakepitError):
    """A session variable's value violates its type or a constraint (``details["rule"]``)."""

    category = "invalid_variable"


class ConfigError(SnakepitError, ValueError):
    """Invalid configuration; the message names the field, the value and what is allowed."""

    category = "config"


class AlreadyRegistered(SnakepitError):
    """A name (host tool, ...) is already taken in its scope."""

    category = "already_registered"


class TransportError(SnakepitError):
    """The transport to a worker failed in a way that is not a crash (protocol violation...)."""

    category = "transport"


_BY_CATEGORY: dict[str, type[SnakepitError]] = {
    "tool": ToolError,
    "unknown_tool": UnknownToolError,
    "invalid_arguments": InvalidArgumentsError,
    "unserializable_result": UnserializableResultError,
    "timeout": RequestTimeout,
    "session": SessionNotFound,
    "invalid_variable": InvalidVariable,
    "quota_exceeded": QuotaExceeded,
}


def error_from_wire(
    category: str,
    type_: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    traceback: str | None = None,
) -> SnakepitError:
    """Build the host-side exception for a wire ``ErrorInfo``."""
    cls = _BY_CATEGORY.get(category, SnakepitError)
    return cls(
        message,
        category=category or None,
        details=details,
        remote_type=type_ or None,
        remote_traceback=traceback or None,
    )
