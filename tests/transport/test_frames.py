"""frames.encode writes exactly what protobuf would for Frame(id=..., <kind>=message)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_bridge import frames
from snakepit_bridge.proto import bridge_pb2 as pb

KINDS = [f.name for f in pb.Frame.DESCRIPTOR.fields if f.name != "id"]


@given(fid=st.integers(0, 2**64 - 1), kind=st.sampled_from(KINDS), payload=st.binary())
def test_encode_matches_protobuf(fid, kind, payload):
    ref = pb.Frame(id=fid)
    body = getattr(ref, kind)
    body.SetInParent()
    if kind in ("execute", "execute_stream"):
        body.args_json = payload
    data = b"".join(frames.encode(fid, kind, body))
    (size,) = frames.HEADER.unpack_from(data)
    assert size == len(data) - frames.HEADER.size
    assert pb.Frame.FromString(data[frames.HEADER.size:]) == ref


def test_every_body_kind_has_a_tag():
    with pytest.raises(KeyError):
        frames.encode(1, "id", pb.Cancel())
