"""Hostile and unusual values: each one arrives exactly as it was sent, or is refused where it is
encoded with the path of the part that has no exact form (protos/README.md §3).

The table runs on the shared codec (both sides use it); one row per side then runs through a
real worker: arguments refused by the host with InvalidArgumentsError, a result the worker
cannot send as UnserializableResultError (a SnakepitError of the call).
"""

import dataclasses
import enum
import math

import numpy as np
import pytest

import snakepit
from snakepit_bridge import serialization

pytestmark = pytest.mark.chaos

NAN, INF = float("nan"), float("inf")


@dataclasses.dataclass
class Point:
    x: float


class Level(enum.Enum):
    UNKNOWN = float("nan")


def _circular():
    x = []
    x.append(x)
    return x


def _deep(n):
    v = []
    for _ in range(n):
        v = [v]
    return v


# value, and either None (round-trips exactly) or the path encode() names
TABLE = [
    ({"x": [1, {"y": NAN}]}, 'args["x"][1]["y"]'),
    ({"t": INF}, 'args["t"]'),
    ({"t": [-INF]}, 'args["t"][0]'),
    ({"s": np.float32("nan")}, 'args["s"]'),
    ({"s": [np.float64("-inf")]}, 'args["s"][0]'),
    ({"p": [None, Point(x=INF)]}, 'args["p"][1]["x"]'),
    ({"e": Level.UNKNOWN}, 'args["e"]'),
    ({"d": {1: "one"}}, 'args["d"]'),
    ({"d": {None: 1}}, 'args["d"]'),
    ({"d": {(1, 2): 1}}, 'args["d"]'),
    ({"k": {"__blob__": "b0"}}, 'args["k"]'),
    ({"a": np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")])}, 'args["a"]'),
    ({"a": np.zeros(2, dtype=[("x", "<i4")])[0]}, 'args["a"]'),
    ({"a": np.zeros(2, dtype="V4")}, 'args["a"]'),
    ({"a": np.array([object()])}, 'args["a"]'),
    ({"n": 2**64}, 'args["n"]'),
    ({"n": -(2**63) - 1}, 'args["n"]'),
    ({"s": "ok", "t": ["\ud800"]}, 'args["t"][0]'),
    ({"c": complex(1, 2)}, 'args["c"]'),
    ({"loop": _circular()}, None),          # path checked by prefix below
    ({"deep": _deep(300)}, None),
    # exact round trips
    ({"z": np.array(5)}, ()),
    ({"z": np.array(1.5, dtype=">f4")}, ()),
    ({"a": np.array([NAN, INF, -INF, -0.0])}, ()),
    ({"a": np.arange(12.0).reshape(3, 4)[:, ::2]}, ()),          # not contiguous
    ({"a": np.asfortranarray(np.arange(6).reshape(2, 3))}, ()),
    ({"a": np.zeros((0, 3), dtype="<u2")}, ()),
    ({"a": np.array(["ab", "ü"], dtype="<U2")}, ()),
    ({"a": np.array(["2026-12-02"], dtype="datetime64[D]")}, ()),
    ({"n": [2**64 - 1, -(2**63), 0]}, ()),
    ({"f": [-0.0, 5e-324, 1.7976931348623157e308, 0.1]}, ()),
    ({"s": ["", "\x00", "null", "__blob__", "😀"], "__blob__": 1}, ()),
    ({"b": [b"", b"\x00" * 3], "nested": {"__blob__": "x", "other": None}}, ()),
    ({"none": None, "list": [None, True, False]}, ()),
]


def _same(a, b):
    """Equal in value and type, arrays in dtype and shape, NaN equal to NaN, -0.0 to -0.0."""
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == np.ascontiguousarray(b).tobytes()
                if a.flags.c_contiguous else _same(np.ascontiguousarray(a), b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                     math.copysign(1, b))
    return a == b


@pytest.mark.parametrize("value,expected", TABLE, ids=[str(i) for i in range(len(TABLE))])
def test_value_round_trips_or_is_refused_with_its_path(value, expected):
    if expected == ():
        data, blobs = serialization.encode(value, root="args")
        # through the wire message, as a peer would see it
        msg = serialization.pb.ExecuteRequest(args_json=data, blobs=blobs)
        back = serialization.decode(*(lambda m: (m.args_json, m.blobs))(
            serialization.pb.ExecuteRequest.FromString(msg.SerializeToString())))
        assert _same(value, back), (value, back)
        return
    with pytest.raises(serialization.Unserializable) as info:
        serialization.encode(value, root="args")
    exc = info.value
    if expected is None:     # circular / too deep: somewhere down the first key's path
        key = next(iter(value))
        assert exc.path.startswith(f'args["{key}"][0][0]') and "deeper" in exc.reason
    else:
        assert exc.path == expected, str(exc)
        assert str(exc).startswith(expected + ": ")
    assert len(str(exc)) < 400


def test_details_and_metadata_stay_lenient():
    """dumps() is for people (error details, metadata): it writes what it can."""
    assert serialization.loads(serialization.dumps({1: object.__name__})) == {"1": "object"}


def test_a_blob_reference_of_the_wrong_type_is_a_clear_error():
    with pytest.raises(ValueError, match="blob"):
        serialization.decode(b'{"x": {"__blob__": []}}', {"b0": serialization.pb.Blob()})


async def test_hostile_values_through_a_real_worker(make_config):
    async with snakepit.start(make_config(size=1)) as app:
        # the host refuses arguments, naming the path; nothing reaches the worker
        with pytest.raises(snakepit.InvalidArgumentsError) as info:
            await app.execute("echo", {"x": [1, {"y": NAN}]})
        assert info.value.details["path"] == 'args["x"][1]["y"]'
        assert 'args["x"][1]["y"]' in str(info.value)
        for bad in (NAN, -1.0, 0, "5", True):
            with pytest.raises(snakepit.InvalidArgumentsError) as info:
                await app.execute("ping", timeout=bad)
            assert info.value.details["field"] == "timeout"
        # the worker refuses a result it cannot send exactly: a SnakepitError of this call
        with pytest.raises(snakepit.UnserializableResultError) as info:
            await app.execute("add", {"a": 1e308, "b": 1e308})
        assert info.value.details["path"] == "result" and "inf" in str(info.value)
        with pytest.raises(snakepit.UnserializableResultError) as info:
            await app.execute("numpy_stats", {"array": np.array([NAN, 1.0])})
        assert info.value.details["path"] == 'result["mean"]'
        # exact round trips through the worker
        value = {"z": np.array(5), "be": np.array([1.5], dtype=">f4"),
                 "n": [2**64 - 1, -(2**63)], "f": -0.0, "keys": {"__blob__": 1, "y": None}}
        assert _same(value, await app.execute("echo", value))
        assert await app.execute("ping", timeout=math.inf)
        assert app.stats("default")["available"] == 1


@pytest.mark.parametrize("make", [
    lambda v: snakepit.PoolConfig(queue_timeout=v), lambda v: snakepit.PoolConfig(
        request_timeout=v), lambda v: snakepit.SessionConfig(ttl=v),
    lambda v: snakepit.HeartbeatConfig(interval=v)])
def test_nan_durations_in_config_are_refused_by_name(make):
    with pytest.raises(snakepit.ConfigError) as info:
        make(NAN)
    assert "nan" in str(info.value) and info.value.details["field"].split(".")[0] in (
        "PoolConfig", "SessionConfig", "HeartbeatConfig")
