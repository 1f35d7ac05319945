"""The committed generated code matches the proto; the argument decoder survives anything."""

from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from snakepit_bridge import serialization
from snakepit_bridge._protogen import GENERATED, generate
from snakepit_bridge.adapter import ArgumentError, describe_function
from snakepit_bridge.proto import bridge_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path):
    target = generate(tmp_path)
    for name in GENERATED:
        fresh = (target / name).read_bytes()
        committed = (ROOT / "snakepit_bridge" / "proto" / name).read_bytes()
        assert fresh == committed, f"{name} is stale: run `make proto`"


def _tool(a: int, b: float = 1.0, s: str = "", items: list | None = None):
    return a


TOOL = describe_function("t", _tool, None, None)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(), lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_on_arbitrary_bytes(data):
    try:
        value = serialization.decode(data)
    except ValueError:
        return   # a clear error: invalid JSON (orjson.JSONDecodeError is a ValueError)
    try:
        TOOL.bind(value)
    except ArgumentError as exc:
        assert exc.details["tool"] == "t"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "s", "items", "zz"]), json_values,
                       max_size=5))
def test_bind_accepts_exactly_the_signature(args):
    try:
        bound = TOOL.bind(args)
    except ArgumentError as exc:
        d = exc.details
        assert d.get("missing") == ["a"] or d.get("unexpected") == ["zz"] or "parameter" in d
        return
    assert "zz" not in args and isinstance(args["a"], int) and not isinstance(args["a"], bool)
    if "b" in args:
        assert isinstance(bound["b"], float)


@settings(max_examples=200, deadline=None)
@given(json_values, st.binary(max_size=50))
def test_encode_decode_round_trip(value, blob):
    data, blobs = serialization.encode({"v": value, "blob": blob})
    assert serialization.decode(data, blobs) == {"v": value, "blob": blob}


def test_missing_blob_is_a_clear_error():
    with pytest.raises(ValueError, match="blob"):
        serialization.decode(b'{"__blob__": "x"}', {"y": pb.Blob(data=b"")})


def test_unserializable_names_the_type():
    class Thing:
        pass
    with pytest.raises(serialization.Unserializable, match="Thing"):
        serialization.encode({"x": Thing()})
