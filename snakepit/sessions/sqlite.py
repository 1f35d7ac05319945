"""Write-through sqlite persistence for the SessionStore (``SessionConfig(store="sqlite")``).

    backend = SqliteSessions(state_dir / "sessions.sqlite3")
    store = SessionStore(SessionConfig(store="sqlite"), backend)   # loads what is stored

A session is one row (ttl, metadata, variables and their specs, encoded with the wire's JSON +
blobs codec so tensors stay binary) and each of its programs one more row, as is each global
program: storing a program writes that program, not the session's others (every write costs
O(its own size), whatever the number of sessions or programs). ``synchronous=FULL``: a change is
on disk before the store's call returns. Expiry is kept as wall-clock time, so TTLs keep running
while the application is down; rows that expired meanwhile are deleted at load. The file is
owner-only (0600) whatever the umask (snakepit.state_files): session variables are private.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from snakepit.sessions.variables import VariableSpec
from snakepit.state_files import private_file
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, expires_wall REAL NOT NULL,
                                     record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_wall);
CREATE TABLE IF NOT EXISTS programs (session_id TEXT NOT NULL, id TEXT NOT NULL,
                                     record BLOB NOT NULL, PRIMARY KEY (session_id, id));
CREATE TABLE IF NOT EXISTS global_programs (id TEXT PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS globals (id INTEGER PRIMARY KEY CHECK (id = 0), record BLOB);
"""
# `globals` is the layout before one row per global program; load() moves its content over.


def _pack(value: Any) -> bytes:
    data, blobs = serialization.encode(value)
    return bytes(pb.ExecuteResponse(result_json=data, blobs=blobs).SerializeToString())


def _unpack(raw: bytes) -> Any:
    msg = pb.ExecuteResponse.FromString(raw)
    return serialization.decode(msg.result_json, msg.blobs)


class SqliteSessions:
    def __init__(self, path: Path) -> None:
        private_file(path)      # before sqlite creates it with the umask's bits
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def load(self, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
        from snakepit.sessions.store import Session

        wall = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            gone = "SELECT id FROM sessions WHERE expires_wall <= ?"
            self._db.execute(f"DELETE FROM programs WHERE session_id IN ({gone})", (wall,))
            self._db.execute("DELETE FROM sessions WHERE expires_wall <= ?", (wall,))
            legacy = self._db.execute("SELECT record FROM globals WHERE id = 0").fetchone()
            if legacy is not None and legacy[0]:
                self._db.executemany("INSERT OR IGNORE INTO global_programs VALUES (?, ?)",
                                     [(k, _pack(v)) for k, v in _unpack(legacy[0]).items()])
                self._db.execute("DELETE FROM globals")
            rows = self._db.execute("SELECT id, expires_wall, record FROM sessions").fetchall()
            programs = self._db.execute("SELECT session_id, id, record FROM programs").fetchall()
            glob = self._db.execute("SELECT id, record FROM global_programs").fetchall()
        sessions: dict[str, Any] = {}
        for sid, expires_wall, raw in rows:
            r = _unpack(raw)
            ttl = math.inf if r["ttl"] is None else r["ttl"]    # JSON has no infinity
            remaining = expires_wall - wall
            idle = ttl - remaining if math.isfinite(remaining) else 0.0
            sessions[sid] = Session(
                id=sid, ttl=ttl, created_at=r["created_at"],
                last_access=now - idle, metadata=r["metadata"],
                programs=dict(r.get("programs") or {}),   # records written before program rows
                variables=r["variables"],
                specs={n: VariableSpec(name=n, type=s["type"], constraints=s["constraints"])
                       for n, s in r["specs"].items()})
        for sid, pid, raw in programs:
            if sid in sessions:
                sessions[sid].programs[pid] = _unpack(raw)
        return sessions, {pid: _unpack(raw) for pid, raw in glob}

    def save(self, session_id: str, record: dict[str, Any], remaining: float,
             fresh: bool = False) -> None:
        """Write a session's record; it expires ``remaining`` seconds from now. ``fresh``:
        the programs of an earlier session with this id go."""
        packed = _pack(record)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            if fresh:
                self._db.execute("DELETE FROM programs WHERE session_id = ?", (session_id,))
            self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                             (session_id, time.time() + remaining, packed))

    def save_program(self, session_id: str, program_id: str, data: Any,
                     remaining: float) -> None:
        packed = _pack(data)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO programs VALUES (?, ?, ?)",
                             (session_id, program_id, packed))
            self._db.execute("UPDATE sessions SET expires_wall = ? WHERE id = ?",
                             (time.time() + remaining, session_id))

    def delete_program(self, session_id: str, program_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM programs WHERE session_id = ? AND id = ?",
                             (session_id, program_id))

    def delete(self, session_id: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM programs WHERE session_id = ?", (session_id,))
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def save_global(self, program_id: str, data: Any) -> None:
        packed = _pack(data)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO global_programs VALUES (?, ?)",
                             (program_id, packed))

    def delete_global(self, program_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM global_programs WHERE id = ?", (program_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
