"""Every SessionStore operation is O(1) or O(log n) in the number of sessions.

No timing: the test counts how many session records an operation reads, through the one
attribute every liveness check goes through (``Session.expires_at``). A scan reads all n.
"""

import math
import os
import sqlite3
import stat
import time

import pytest
import trio
import trio.testing

from snakepit.config import SessionConfig
from snakepit.sessions import Session, SessionStore
from snakepit.sessions.sqlite import SqliteSessions, _pack

N = 5000


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def reads(monkeypatch):
    """Counts reads of Session.expires_at from the moment the test calls ``reads.start()``."""
    class Counter:
        n = 0
        on = False

        def start(self):
            self.n, self.on = 0, True

    counter = Counter()
    plain = Session.expires_at.fget

    def counted(self):
        if counter.on:
            counter.n += 1
        return plain(self)

    monkeypatch.setattr(Session, "expires_at", property(counted))
    return counter


async def test_operations_do_not_scan_the_sessions(clock, reads):
    store = SessionStore(SessionConfig(max_sessions=N + 10, ttl=100))
    for i in range(N):
        await store.create(f"s{i}")
        await store.store_program(f"s{i}", "p", {"i": i})
    await trio.sleep(50)
    budget = 4 * math.ceil(math.log2(N))
    for op in (lambda: store.create("new"), lambda: store.touch("s7"),
               lambda: store.register_variable("s8", "v", "integer", 1),
               lambda: store.store_program("s9", "q", 1), lambda: store.delete("s10"),
               store.cleanup_expired):
        reads.start()
        await op()
        assert reads.n <= budget, (op, reads.n)
    reads.start()
    assert store.stats()["sessions"] == N and reads.n <= budget
    assert store.stats()["programs"] == N and store.stats()["variables"] == 1


async def test_expiry_sweep_reads_only_what_expired(clock, reads):
    store = SessionStore(SessionConfig(ttl=100, max_sessions=None))
    for i in range(N):
        await store.create(f"s{i}", ttl=10 if i % 100 == 0 else 100)
    await trio.sleep(20)
    reads.start()
    assert await store.cleanup_expired() == N // 100
    assert reads.n <= 4 * (N // 100)
    assert store.stats()["sessions"] == N - N // 100


async def test_counts_follow_every_change(clock):
    store = SessionStore(SessionConfig(ttl=100))
    await store.create("a")
    await store.create("b", ttl=10)
    await store.store_program("a", "p", 1)
    await store.store_program("a", "p", 2)         # replaces: still one
    await store.store_program("b", "p", 1)
    await store.register_variable("a", "v", "integer", 1)
    await store.register_variable("a", "v", "integer", 2)
    await store.register_variable("b", "v", "integer", 1)
    assert {k: store.stats()[k] for k in ("sessions", "programs", "variables")} == \
        {"sessions": 2, "programs": 2, "variables": 2}
    await trio.sleep(20)                           # b expired, not swept yet
    assert store.stats()["sessions"] == 1
    await store.create("b")                        # a new b replaces the expired one
    assert {k: store.stats()[k] for k in ("sessions", "programs", "variables")} == \
        {"sessions": 2, "programs": 1, "variables": 1}
    assert await store.delete_program("a", "p") and not await store.delete_program("a", "p")
    assert await store.delete_variable("a", "v") and not await store.delete_variable("a", "v")
    await store.get("a")                           # touched at t=20: lives until 120
    await trio.sleep(90)
    assert await store.cleanup_expired() == 0      # a was re-keyed, not expired
    await trio.sleep(20)
    assert await store.cleanup_expired() == 2      # a and the new b, both due at 120
    assert await store.cleanup_expired() == 0
    assert {k: store.stats()[k] for k in ("sessions", "programs", "variables", "expired")} == \
        {"sessions": 0, "programs": 0, "variables": 0, "expired": 2}


async def test_deleted_sessions_do_not_pile_up_in_the_expiry_heap(clock):
    store = SessionStore(SessionConfig(ttl=3600))
    for i in range(2000):
        await store.create(f"s{i}")
        await store.delete(f"s{i}")
    assert len(store._expiry) <= 64 + 2


async def test_sqlite_keeps_programs_as_rows(clock, tmp_path):
    path = tmp_path / "s.sqlite3"
    store = SessionStore(SessionConfig(store="sqlite", ttl=100), SqliteSessions(path))
    await store.create("s")
    for i in range(3):
        await store.store_program("s", f"p{i}", {"i": i})
    await store.store_global_program("g", 1)
    await store.store_global_program("h", 2)
    assert await store.delete_global_program("h") and await store.delete_program("s", "p2")
    await store.create("t", ttl=10)
    await store.store_program("t", "old", 1)
    store._backend.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT session_id, id FROM programs ORDER BY 1, 2").fetchall() == [
        ("s", "p0"), ("s", "p1"), ("t", "old")]
    db.close()

    again = SessionStore(SessionConfig(store="sqlite", ttl=100), SqliteSessions(path))
    assert await again.get_program("s", "p1") == {"i": 1}
    assert await again.get_global_program("g") == 1
    assert again.stats()["global_programs"] == 1 and again.stats()["programs"] == 3
    await trio.sleep(20)
    await again.create("t")                        # replaces the expired t: its program goes
    again._backend.close()
    third = SessionStore(SessionConfig(store="sqlite"), SqliteSessions(path))
    assert third.stats()["programs"] == 2
    third._backend.close()


async def test_sqlite_reads_the_older_layout(clock, tmp_path):
    """Databases written before one row per program: programs in the session record, global
    programs in one `globals` row."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE sessions (id TEXT PRIMARY KEY, expires_wall REAL NOT NULL,
                               record BLOB NOT NULL);
        CREATE TABLE globals (id INTEGER PRIMARY KEY CHECK (id = 0), record BLOB);""")
    record = {"ttl": 100.0, "created_at": 0.0, "metadata": {}, "programs": {"p": [1]},
              "variables": {}, "specs": {}}
    db.execute("INSERT INTO sessions VALUES ('s', ?, ?)", (time.time() + 50, _pack(record)))
    db.execute("INSERT INTO sessions VALUES ('gone', ?, ?)", (time.time() - 1, _pack(record)))
    db.execute("INSERT INTO globals VALUES (0, ?)", (_pack({"g": {"x": 1}}),))
    db.commit()
    db.close()
    store = SessionStore(SessionConfig(store="sqlite"), SqliteSessions(path))
    assert await store.get_program("s", "p") == [1]
    assert await store.get_global_program("g") == {"x": 1}
    assert await store.list() == ["s"]
    store._backend.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT id FROM sessions").fetchall() == [("s",)]   # expired row gone
    db.close()


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_sqlite_file_is_private_whatever_the_umask(clock, tmp_path, umask):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    old = os.umask(umask)
    try:
        store = SessionStore(SessionConfig(store="sqlite"),
                             SqliteSessions(state / "sessions.sqlite3"))
        await store.create("s")
        await store.register_variable("s", "secret", "string", "x")
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in state.iterdir()}
        store._backend.close()
    finally:
        os.umask(old)
    assert modes and set(modes.values()) == {0o600}, modes


async def test_values_that_cannot_be_stored_exactly_are_refused_with_their_path(clock):
    from snakepit import errors
    store = SessionStore(SessionConfig())
    with pytest.raises(errors.InvalidArgumentsError) as info:
        await store.create("s", metadata={"w": [1.0, float("nan")]})
    assert info.value.details["path"] == 'metadata["w"][1]'
    await store.create("s")
    with pytest.raises(errors.InvalidArgumentsError) as info:
        await store.store_program("s", "p", {1: "one"})
    assert info.value.details["path"] == "data"
    with pytest.raises(errors.InvalidVariable) as info:
        await store.register_variable("s", "t", "float", float("inf"))
    assert info.value.details["rule"] == "encodable"
    with pytest.raises(errors.InvalidVariable):
        await store.register_variable("s", "l", "list", [float("nan")])
    assert store.stats()["variables"] == 0 and store.stats()["programs"] == 0


@pytest.mark.parametrize("ttl", [float("nan"), 0, -1.0, "60", True])
async def test_bad_ttl_is_refused_by_name(clock, ttl):
    from snakepit import errors
    store = SessionStore(SessionConfig())
    with pytest.raises(errors.InvalidArgumentsError) as info:
        await store.create("s", ttl=ttl)
    assert info.value.details["field"] == "ttl" and await store.list() == []


async def test_infinite_ttl_never_expires(clock):
    store = SessionStore(SessionConfig())
    await store.create("s", ttl=float("inf"))
    await trio.sleep(10**9)
    assert await store.cleanup_expired() == 0 and await store.exists("s")


async def test_infinite_ttl_survives_sqlite(clock, tmp_path):
    path = tmp_path / "s.sqlite3"
    store = SessionStore(SessionConfig(store="sqlite"), SqliteSessions(path))
    await store.create("forever", ttl=float("inf"))
    store._backend.close()
    again = SessionStore(SessionConfig(store="sqlite"), SqliteSessions(path))
    info = await again.get("forever")
    assert info["ttl"] == float("inf") and info["expires_in"] == float("inf")
    await trio.sleep(10**9)
    assert await again.cleanup_expired() == 0
    again._backend.close()
