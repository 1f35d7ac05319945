"""SessionStore rules, on MockClock (no processes)."""

import numpy as np
import pytest
import trio
import trio.testing

from snakepit import errors
from snakepit.config import SessionConfig
from snakepit.sessions import SessionStore, session_sweeper
from snakepit.sessions.sqlite import SqliteSessions


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def test_crud_and_idempotent_create(clock):
    store = SessionStore(SessionConfig())
    a = await store.create("s1", metadata={"user": "ann"})
    again = await store.create("s1", metadata={"other": 1})
    assert again["metadata"] == {"user": "ann"} and a["ttl"] == 3600
    assert await store.exists("s1") and await store.list() == ["s1"]
    assert (await store.get("s1"))["metadata"] == {"user": "ann"}
    with pytest.raises(errors.SessionNotFound):
        await store.get("nope")
    assert await store.delete("s1") and not await store.delete("s1")
    assert await store.list() == [] and store.stats()["deleted"] == 1


async def test_ttl_expiry_by_sweeper_and_touch(clock):
    store = SessionStore(SessionConfig(ttl=100, cleanup_interval=60))
    ended = []

    async def on_end(sid, reason):
        ended.append((sid, reason, trio.current_time()))

    store.on_end.append(on_end)
    async with trio.open_nursery() as nursery:
        await nursery.start(session_sweeper, store)
        await store.create("short", ttl=30)
        await store.create("long")
        await trio.sleep(50)
        await store.get("long")            # touches: expires at 150 now
        await trio.sleep(70)               # t=120: sweeps at 60 and 120
        assert ended == [("short", "expired", 60)]
        assert await store.exists("long")
        await trio.sleep(61)               # the sweep at 180 (> 150) has run
        assert ended[-1] == ("long", "expired", 180)
        nursery.cancel_scope.cancel()
    assert store.stats()["expired"] == 2


@pytest.mark.parametrize("quota", ["max_sessions", "max_programs_per_session",
                                   "max_global_programs", "max_variables_per_session"])
async def test_quotas_and_freed_slot_reuse(clock, quota):
    store = SessionStore(SessionConfig(**{quota: 2}))
    await store.create("base")

    async def add(i):
        if quota == "max_sessions":
            await store.create(f"s{i}")
        elif quota == "max_programs_per_session":
            await store.store_program("base", f"p{i}", {"i": i})
        elif quota == "max_global_programs":
            await store.store_global_program(f"g{i}", {"i": i})
        else:
            await store.register_variable("base", f"v{i}", "integer", i)

    async def free(i):
        if quota == "max_sessions":
            await store.delete(f"s{i}")
        elif quota == "max_programs_per_session":
            await store.delete_program("base", f"p{i}")
        elif quota == "max_global_programs":
            await store.delete_global_program(f"g{i}")
        else:
            await store.delete_variable("base", f"v{i}")

    start = 1 if quota == "max_sessions" else 0   # "base" is one session already
    for i in range(start, 2):
        await add(i)
    with pytest.raises(errors.QuotaExceeded) as info:
        await add(9)
    assert info.value.details == {"quota": quota, "limit": 2}
    await free(1)
    await add(9)                                   # the freed slot is usable again


async def test_failed_update_leaves_state(clock):
    store = SessionStore(SessionConfig())
    await store.create("s", metadata={"n": 1})

    def bad(meta):
        meta["n"] = 999
        raise RuntimeError("half way")

    with pytest.raises(errors.SessionUpdateFailed):
        await store.update("s", bad)
    assert (await store.get("s"))["metadata"] == {"n": 1}
    await store.update("s", lambda m: {**m, "n": 2})
    assert (await store.get("s"))["metadata"] == {"n": 2}


@pytest.mark.parametrize("type_,constraints,good,bad,rule", [
    ("float", {"min": 0, "max": 1}, 0.5, 1.5, "max"),
    ("float", {"min": 0}, 1, -0.1, "min"),
    ("float", None, 2, "2", "type"),
    ("integer", {"max": 10}, 3, 3.5, "type"),
    ("integer", {"min": 0}, 3, -1, "min"),
    ("string", {"max_length": 3}, "abc", "abcd", "max_length"),
    ("string", None, "x", 5, "type"),
    ("boolean", None, True, 1, "type"),
    ("choice", {"choices": ["a", "b"]}, "a", "c", "choices"),
    ("list", {"max_length": 2}, [1, 2], [1, 2, 3], "max_length"),
    ("tensor", {"shape": [2, 2]}, [[1, 2], [3, 4]], [1, 2, 3], "shape"),
    ("tensor", None, [1.0], ["x"], "type"),
    ("embedding", {"max_length": 3}, [0.1, 0.2], [[0.1]], "shape"),
])
async def test_variable_rules(clock, type_, constraints, good, bad, rule):
    store = SessionStore(SessionConfig())
    await store.create("s")
    await store.register_variable("s", "v", type_, good, constraints)
    with pytest.raises(errors.InvalidVariable) as info:
        await store.update_variable("s", "v", bad)
    assert info.value.details["rule"] == rule
    kept = await store.get_variable("s", "v")
    assert kept == (float(good) if type_ == "float" else good)   # the old value stays
    with pytest.raises(errors.InvalidVariable):
        await store.register_variable("s", "w", type_, bad, constraints)
    assert [v["name"] for v in await store.list_variables("s")] == ["v"]


async def test_large_tensors_are_binary(clock):
    store = SessionStore(SessionConfig())
    await store.create("s")
    big = np.random.default_rng(0).random(4096)          # 32 KB
    stored = await store.register_variable("s", "emb", "embedding", big.tolist())
    assert isinstance(stored, np.ndarray) and stored.nbytes > 10 * 1024
    small = await store.register_variable("s", "t", "tensor", [1.0, 2.0])
    assert small == [1.0, 2.0]


async def test_bad_input(clock):
    store = SessionStore(SessionConfig())
    with pytest.raises(errors.InvalidArgumentsError, match="session_id"):
        await store.create("bad id with spaces")
    with pytest.raises(errors.InvalidArgumentsError, match="limit"):
        await store.create("s", metadata={"blob": "x" * 100_000})
    with pytest.raises(errors.InvalidArgumentsError, match="JSON"):
        await store.create("s", metadata={"obj": object()})
    assert await store.list() == []
    await store.create("s")
    with pytest.raises(errors.InvalidArgumentsError):
        await store.store_program("s", "p", {"x": object()})
    with pytest.raises(errors.InvalidVariable, match="type"):
        await store.register_variable("s", "v", "complex", 1)
    with pytest.raises(errors.InvalidVariable, match="constraint"):
        await store.register_variable("s", "v", "float", 1.0, {"maximum": 2})


async def test_sqlite_round_trip(clock, tmp_path):
    path = tmp_path / "s.sqlite3"
    store = SessionStore(SessionConfig(store="sqlite"), SqliteSessions(path))
    await store.create("s", metadata={"k": [1, 2]})
    await store.store_program("s", "p", {"steps": 3})
    await store.store_global_program("g", {"shared": True})
    await store.register_variable("s", "emb", "embedding", list(np.arange(2048.0)))
    await store.register_variable("s", "t", "float", 0.5, {"max": 1})
    store._backend.close()
    again = SessionStore(SessionConfig(store="sqlite"), SqliteSessions(path))
    assert (await again.get("s"))["metadata"] == {"k": [1, 2]}
    assert await again.get_program("s", "p") == {"steps": 3}
    assert await again.get_global_program("g") == {"shared": True}
    emb = await again.get_variable("s", "emb")
    assert isinstance(emb, np.ndarray) and emb[2047] == 2047.0
    with pytest.raises(errors.InvalidVariable):       # constraints survive too
        await again.update_variable("s", "t", 5.0)
    again._backend.close()
