"""SessionStore: sessions, their programs and typed variables, with TTLs and quotas.

    await app.sessions.create("s1", ttl=600, metadata={"user": "ann"})
    await app.sessions.register_variable("s1", "temperature", "float", 0.7, {"max": 2.0})
    await app.sessions.update_variable("s1", "temperature", 0.9)
    await app.sessions.store_program("s1", "prog-1", {"kind": "chain"})

All operations run on the trio thread and cost O(1) or O(log n) in the number of sessions:
quotas and ``stats()`` read counters kept up to date by every change, and expiry is an
:class:`~snakepit.sessions.expiry.ExpiryIndex` (a heap) instead of a scan. Time comes from
``trio.current_time()`` (TTL tests run on MockClock). With ``SessionConfig(store="sqlite")`` every change is written through to an
sqlite file (synchronous=FULL) before the call returns, and the store reloads it at start.
Deleting or expiring a session calls the ``on_end`` hooks (workers release its state, the
pools drop its affinity, its host tools go); ``rebind`` calls the ``on_rebind`` hooks (the pools
drop its affinity and its workers' state; the session stays).
"""

from __future__ import annotations

import builtins
import copy
import math
import re
import time
from typing import Any, Awaitable, Callable

import attrs
import trio

from snakepit.config import SessionConfig
from snakepit.errors import (InvalidArgumentsError, InvalidVariable, QuotaExceeded,
                             SessionNotFound, SessionUpdateFailed)
from snakepit.sessions.expiry import ExpiryIndex
from snakepit.sessions.variables import VariableSpec
from snakepit.validate import check_seconds
from snakepit_bridge import serialization

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
MAX_METADATA_BYTES = 64 * 1024
MAX_PROGRAM_BYTES = 16 * 1024 * 1024

OnEnd = Callable[[str, str], Awaitable[None]]   # (session_id, reason)


@attrs.define
class Session:
    id: str
    ttl: float
    created_at: float                   # wall clock
    last_access: float                  # trio clock
    metadata: dict[str, Any] = attrs.field(factory=dict)
    programs: dict[str, Any] = attrs.field(factory=dict)
    variables: dict[str, Any] = attrs.field(factory=dict)          # name -> value
    specs: dict[str, VariableSpec] = attrs.field(factory=dict)     # name -> spec

    @property
    def expires_at(self) -> float:
        return self.last_access + self.ttl

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "ttl": self.ttl, "created_at": self.created_at,
                "metadata": copy.deepcopy(self.metadata), "programs": len(self.programs),
                "variables": len(self.variables),
                "expires_in": self.expires_at - trio.current_time()}


def check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str) or not SESSION_ID_RE.match(session_id):
        raise InvalidArgumentsError(
            f"session_id must be 1-128 characters (letters, digits, '_.:@-', not first), "
            f"got {session_id!r:.80}", details={"field": "session_id"})
    return session_id


def _json_size(value: Any, what: str, limit: int) -> int:
    """The encoded size of ``value`` (``what``: "session metadata", "program data"), or
    InvalidArgumentsError naming the path of a part that cannot be stored exactly."""
    try:
        data, blobs = serialization.encode(value, root=what.split()[-1])
    except serialization.Unserializable as exc:
        raise InvalidArgumentsError(f"{what} must be JSON-serializable: {exc}",
                                    details={"path": exc.path, "reason": exc.reason}) from None
    size = len(data) + sum(len(b.data) for b in blobs.values())
    if size > limit:
        raise InvalidArgumentsError(f"{what} is {size} bytes; the limit is {limit}",
                                    details={"size": size, "limit": limit})
    return size


class SessionStore:
    def __init__(self, config: SessionConfig, backend: Any = None) -> None:
        self.config = config
        self._sessions: dict[str, Session] = {}
        self._global_programs: dict[str, Any] = {}
        self._expiry = ExpiryIndex()
        self._programs = 0     # sum of len(s.programs) over self._sessions
        self._variables = 0    # sum of len(s.variables) over self._sessions
        self._backend = backend
        self.on_end: list[OnEnd] = []
        self.on_rebind: list[Callable[[str], Awaitable[None]]] = []
        self.expired = 0
        self.deleted = 0
        self.emit: Callable[[tuple[str, ...], dict[str, Any], dict[str, Any]], None] | None = None
        if backend is not None:
            sessions, self._global_programs = backend.load(trio.current_time())
            for session in sessions.values():
                self._remember(session)

    # -- helpers ----------------------------------------------------------------------------
    def _event(self, name: str, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        if self.emit is not None:
            self.emit(("snakepit", "session", name), measurements, metadata)

    def _quota(self, quota: str, limit: int | None, count: int) -> None:
        if limit is not None and count >= limit:
            self._event("quota_exceeded", {"limit": limit}, {"quota": quota})
            raise QuotaExceeded(f"quota {quota}={limit} reached",
                                details={"quota": quota, "limit": limit})

    def _live(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None or session.expires_at <= trio.current_time():
            raise SessionNotFound(f"no session {session_id!r}",
                                  details={"session_id": session_id})
        return session

    def _remember(self, session: Session) -> None:
        old = self._sessions.get(session.id)
        if old is not None:
            self._forget(old)
        self._sessions[session.id] = session
        self._programs += len(session.programs)
        self._variables += len(session.variables)
        self._expiry.add(session)

    def _forget(self, session: Session) -> None:
        del self._sessions[session.id]
        self._programs -= len(session.programs)
        self._variables -= len(session.variables)
        self._expiry.discard(session.id)
        self._expiry.compact(self._sessions.values(), len(self._sessions))

    def _live_count(self) -> int:
        self._expiry.advance(trio.current_time(), self._sessions.get)
        return len(self._sessions) - len(self._expiry.due)

    async def _write(self, method: str, *args: Any) -> None:
        """Write through to the backend (in a thread: sqlite syncs to disk) if there is one."""
        if self._backend is not None:
            await trio.to_thread.run_sync(getattr(self._backend, method), *args)

    async def _save(self, session: Session, *, fresh: bool = False) -> None:
        """Write the session's record; ``fresh``: a new session, drop any stored programs of
        an expired one that had the same id."""
        if self._backend is not None:
            await self._write("save", session.id, _record(session),
                              session.expires_at - trio.current_time(), fresh)

    # -- sessions ---------------------------------------------------------------------------
    async def create(self, session_id: str, *, ttl: float | None = None,
                     metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create a session (an existing live one is returned as it is)."""
        check_session_id(session_id)
        existing = self._sessions.get(session_id)
        if existing is not None and existing.expires_at > trio.current_time():
            return existing.info()
        if ttl is not None:
            ttl = check_seconds(ttl, "ttl")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidArgumentsError(f"metadata must be a dict, got {type(metadata).__name__}")
        _json_size(metadata or {}, "session metadata", MAX_METADATA_BYTES)
        self._quota("max_sessions", self.config.max_sessions, self._live_count())
        session = Session(id=session_id, ttl=float(ttl or self.config.ttl),
                          created_at=time.time(), last_access=trio.current_time(),
                          metadata=copy.deepcopy(metadata or {}))
        self._remember(session)     # replaces an expired one of the same id
        await self._save(session, fresh=True)
        self._event("created", {"ttl": session.ttl}, {"session_id": session_id})
        return session.info()

    async def touch(self, session_id: str) -> None:
        """Create on first use (default TTL) or refresh the last access."""
        session = self._sessions.get(session_id)
        if session is None or session.expires_at <= trio.current_time():
            await self.create(session_id)
        else:
            session.last_access = trio.current_time()

    async def get(self, session_id: str) -> dict[str, Any]:
        session = self._live(session_id)
        session.last_access = trio.current_time()
        return session.info()

    async def exists(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        return session is not None and session.expires_at > trio.current_time()

    async def list(self) -> builtins.list[str]:
        now = trio.current_time()
        return [s.id for s in self._sessions.values() if s.expires_at > now]

    async def delete(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        if session is None:
            return False
        self._forget(session)
        self.deleted += 1
        await self._write("delete", session_id)
        await self._ended(session_id, "deleted")
        return True

    async def rebind(self, session_id: str) -> None:
        """Unbind the session from its worker, keeping the session (metadata, programs,
        variables, host tools): its next call goes to any worker, which it then sticks to.
        This is how a strict-affinity session recovers after its worker died
        (``SessionWorkerUnavailable``); state the old worker held for it is gone.

            try:
                await app.execute("step", session_id="s1")
            except snakepit.SessionWorkerUnavailable:
                await app.sessions.rebind("s1")
        """
        self._live(session_id)
        for hook in list(self.on_rebind):
            await hook(session_id)
        self._event("rebound", {}, {"session_id": session_id})

    async def update(self, session_id: str, fn: Callable[[dict[str, Any]], Any]
                     ) -> dict[str, Any]:
        """Apply ``fn`` to a copy of the metadata; ``fn``'s return value (or the mutated copy)
        replaces it. If ``fn`` raises, nothing changes and SessionUpdateFailed is raised."""
        session = self._live(session_id)
        draft = copy.deepcopy(session.metadata)
        try:
            result = fn(draft)
            if hasattr(result, "__await__"):
                result = await result
        except Exception as exc:
            raise SessionUpdateFailed(f"update of session {session_id!r} failed: {exc!r}",
                                      details={"session_id": session_id}) from exc
        new = draft if result is None else result
        if not isinstance(new, dict):
            raise SessionUpdateFailed(f"update must produce a dict, got {type(new).__name__}")
        _json_size(new, "session metadata", MAX_METADATA_BYTES)
        session.metadata = new
        session.last_access = trio.current_time()
        await self._save(session)
        return session.info()

    async def cleanup_expired(self) -> int:
        """End every expired session; returns how many. Cost: O(k log n) for k expired."""
        self._expiry.advance(trio.current_time(), self._sessions.get)
        gone = 0
        due: builtins.list[Session] = self._expiry.take_due()
        for session in due:
            if self._sessions.get(session.id) is not session:
                continue           # deleted or replaced while an earlier hook ran
            self._forget(session)
            self.expired += 1
            gone += 1
            await self._write("delete", session.id)
            await self._ended(session.id, "expired")
        return gone

    async def _ended(self, session_id: str, reason: str) -> None:
        for hook in list(self.on_end):
            await hook(session_id, reason)

    def stats(self) -> dict[str, Any]:
        return {"sessions": self._live_count(), "programs": self._programs,
                "global_programs": len(self._global_programs), "variables": self._variables,
                "expired": self.expired, "deleted": self.deleted,
                "store": self.config.store}

    # -- programs ---------------------------------------------------------------------------
    async def store_program(self, session_id: str, program_id: str, data: Any) -> None:
        session = self._live(session_id)
        check_session_id(program_id)
        _json_size(data, "program data", MAX_PROGRAM_BYTES)
        if program_id not in session.programs:
            self._quota("max_programs_per_session", self.config.max_programs_per_session,
                        len(session.programs))
            self._programs += 1
        session.programs[program_id] = stored = copy.deepcopy(data)
        session.last_access = trio.current_time()
        await self._write("save_program", session_id, program_id, stored, session.ttl)

    async def get_program(self, session_id: str, program_id: str) -> Any:
        session = self._live(session_id)
        if program_id not in session.programs:
            raise SessionNotFound(f"session {session_id!r} has no program {program_id!r}",
                                  details={"session_id": session_id, "program_id": program_id})
        session.last_access = trio.current_time()
        return copy.deepcopy(session.programs[program_id])

    async def delete_program(self, session_id: str, program_id: str) -> bool:
        session = self._live(session_id)
        if program_id not in session.programs:
            return False
        del session.programs[program_id]
        self._programs -= 1
        await self._write("delete_program", session_id, program_id)
        return True

    async def store_global_program(self, program_id: str, data: Any) -> None:
        check_session_id(program_id)
        _json_size(data, "program data", MAX_PROGRAM_BYTES)
        if program_id not in self._global_programs:
            self._quota("max_global_programs", self.config.max_global_programs,
                        len(self._global_programs))
        self._global_programs[program_id] = stored = copy.deepcopy(data)
        await self._write("save_global", program_id, stored)

    async def delete_global_program(self, program_id: str) -> bool:
        if self._global_programs.pop(program_id, None) is None:
            return False
        await self._write("delete_global", program_id)
        return True

    async def get_global_program(self, program_id: str) -> Any:
        if program_id not in self._global_programs:
            raise SessionNotFound(f"no global program {program_id!r}",
                                  details={"program_id": program_id})
        return copy.deepcopy(self._global_programs[program_id])

    # -- variables --------------------------------------------------------------------------
    async def register_variable(self, session_id: str, name: str, type: str, value: Any,
                                constraints: dict[str, Any] | None = None) -> Any:
        session = self._live(session_id)
        spec = VariableSpec.make(name, type, constraints)
        stored = spec.validate(value)
        if name not in session.specs:
            self._quota("max_variables_per_session", self.config.max_variables_per_session,
                        len(session.specs))
            self._variables += 1
        session.specs[name], session.variables[name] = spec, stored
        session.last_access = trio.current_time()
        await self._save(session)
        return stored

    async def get_variable(self, session_id: str, name: str) -> Any:
        session = self._live(session_id)
        if name not in session.variables:
            raise InvalidVariable(f"session {session_id!r} has no variable {name!r}",
                                  details={"variable": name, "rule": "exists"})
        session.last_access = trio.current_time()
        return copy.deepcopy(session.variables[name])

    async def update_variable(self, session_id: str, name: str, value: Any) -> Any:
        session = self._live(session_id)
        if name not in session.specs:
            raise InvalidVariable(f"session {session_id!r} has no variable {name!r}; "
                                  f"register it first", details={"variable": name,
                                                                 "rule": "exists"})
        stored = session.specs[name].validate(value)   # raises before anything changes
        session.variables[name] = stored
        session.last_access = trio.current_time()
        await self._save(session)
        return stored

    async def list_variables(self, session_id: str) -> builtins.list[dict[str, Any]]:
        session = self._live(session_id)
        return [{"name": n, "type": session.specs[n].type,
                 "constraints": dict(session.specs[n].constraints)} for n in session.specs]

    async def delete_variable(self, session_id: str, name: str) -> bool:
        session = self._live(session_id)
        if session.specs.pop(name, None) is None:
            return False
        session.variables.pop(name, None)
        self._variables -= 1
        await self._save(session)
        return True

    def variable_type(self, session_id: str, name: str) -> str | None:
        session = self._sessions.get(session_id)
        spec = session.specs.get(name) if session else None
        return spec.type if spec else None


def _record(session: Session) -> dict[str, Any]:
    """What the backend stores for a session besides its programs (those are one row each).
    Built on the trio thread: the backend's thread must not read dicts the store mutates."""
    return {"ttl": session.ttl if math.isfinite(session.ttl) else None,   # None: never expires
            "created_at": session.created_at,
            "metadata": session.metadata, "variables": dict(session.variables),
            "specs": {n: {"type": s.type, "constraints": s.constraints}
                      for n, s in session.specs.items()}}


async def session_sweeper(store: SessionStore, *,
                          task_status: trio.TaskStatus[SessionStore] = trio.TASK_STATUS_IGNORED
                          ) -> None:
    """The store as a supervised child: expire sessions every ``cleanup_interval``."""
    task_status.started(store)
    while True:
        await trio.sleep(store.config.cleanup_interval)
        await store.cleanup_expired()
