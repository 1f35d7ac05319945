"""Write-through sqlite persistence for the SessionStore (``SessionConfig(store="sqlite")``).

Each session is one row: its whole record encoded with the wire's JSON + blobs codec (so
tensors stay binary), stored as a serialized message. ``synchronous=FULL``: a change is on disk
before the store's call returns. Expiry is kept as wall-clock time, so TTLs keep running while
the application is down.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from snakepit.sessions.variables import VariableSpec
from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, expires_wall REAL NOT NULL,
                                     record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS globals (id INTEGER PRIMARY KEY CHECK (id = 0), record BLOB);
"""


def _pack(value: Any) -> bytes:
    data, blobs = serialization.encode(value)
    return bytes(pb.ExecuteResponse(result_json=data, blobs=blobs).SerializeToString())


def _unpack(raw: bytes) -> Any:
    msg = pb.ExecuteResponse.FromString(raw)
    return serialization.decode(msg.result_json, msg.blobs)


class SqliteSessions:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def load(self, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
        from snakepit.sessions.store import Session

        wall = time.time()
        sessions: dict[str, Any] = {}
        with self._lock:
            rows = self._db.execute("SELECT id, expires_wall, record FROM sessions").fetchall()
            glob = self._db.execute("SELECT record FROM globals WHERE id = 0").fetchone()
        for sid, expires_wall, raw in rows:
            if expires_wall <= wall:
                continue
            r = _unpack(raw)
            remaining = expires_wall - wall
            sessions[sid] = Session(
                id=sid, ttl=r["ttl"], created_at=r["created_at"],
                last_access=now - (r["ttl"] - remaining), metadata=r["metadata"],
                programs=r["programs"], variables=r["variables"],
                specs={n: VariableSpec(name=n, type=s["type"], constraints=s["constraints"])
                       for n, s in r["specs"].items()})
        return sessions, (_unpack(glob[0]) if glob else {})

    def save(self, session: Any, now: float) -> None:
        record = {"ttl": session.ttl, "created_at": session.created_at,
                  "metadata": session.metadata, "programs": session.programs,
                  "variables": session.variables,
                  "specs": {n: {"type": s.type, "constraints": s.constraints}
                            for n, s in session.specs.items()}}
        expires_wall = time.time() + (session.expires_at - now)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)",
                             (session.id, expires_wall, _pack(record)))

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def save_globals(self, programs: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO globals VALUES (0, ?)", (_pack(programs),))

    def close(self) -> None:
        with self._lock:
            self._db.close()
