"""Large blobs leave the sender with one copy: the encoder hands the caller's own buffer to a
sink (the worker's ``Segments`` writes it into a segment at once, the host's ``Deferred`` keeps
it until a transport sends it); the message never holds the payload in ``Blob.data``."""

import gc
import glob
import os

import numpy as np
import pytest

from shm_values import MB, assert_same, values
from snakepit_bridge import serialization, shm
from snakepit_bridge.proto import bridge_pb2 as pb


def mine(prefix):
    return glob.glob(os.path.join(shm.SHM_DIR, prefix + "*"))


@pytest.fixture
def segments(request):
    prefix = f"snakepit-test{os.getpid()}x{request.node.name[-20:].replace('[', '')}"
    seg = shm.Segments(prefix, "w1")
    yield seg
    shm.sweep(prefix + "-")


class Owner:
    """Stands for the trio task that encoded a request."""


def test_worker_sink_writes_each_large_buffer_into_a_segment_once(segments):
    sent = values()
    data, blobs = serialization.encode(sent, large=segments)
    big = {k for k, b in blobs.items() if b.shm_name}
    assert len(big) == len(sent) - 2                      # all but "small" and "zero_d"
    assert all(blobs[k].data == b"" for k in big)         # the payload is not in the message
    assert len(mine(segments.prefix)) == len(big)
    assert_same(serialization.decode(data, blobs), sent)
    assert mine(segments.prefix) == []                    # each unlinked as it was read


def test_host_sink_keeps_the_buffer_until_the_pipe_writes_it(segments):
    sent, owner = values(), Owner()
    data, blobs = serialization.encode(sent, large=shm.Deferred(owner))
    request = pb.ExecuteRequest(args_json=data, blobs=blobs)
    assert request.ByteSize() < 10_000                    # tokens, not payload
    assert mine(segments.prefix) == []
    names = segments.export(request)
    assert len(names) == len(sent) - 2 and sorted(mine(segments.prefix)) == sorted(
        os.path.join(shm.SHM_DIR, n) for n in names)
    assert shm.pending_size(request) == 0
    assert_same(serialization.decode(request.args_json, request.blobs), sent)
    assert mine(segments.prefix) == []


def test_without_shared_memory_the_pipe_and_grpc_put_the_bytes_inline():
    sent, owner = values(), Owner()
    data, blobs = serialization.encode(sent, large=shm.Deferred(owner))
    off = shm.Segments("", "w1")                          # no run prefix: shared memory off
    request = pb.ExecuteRequest(args_json=data, blobs=blobs)
    assert off.export(request) == []
    assert all(not b.shm_name for b in request.blobs.values())
    assert_same(serialization.decode(request.args_json, request.blobs), sent)

    data, blobs = serialization.encode(sent, large=shm.Deferred(owner))
    request = pb.ExecuteRequest(args_json=data, blobs=blobs)
    size = shm.pending_size(request)
    assert size > 20 * MB
    shm.materialize(request)                               # the gRPC transport's step
    assert shm.pending_size(request) == 0 and request.ByteSize() > size
    assert_same(serialization.decode(request.args_json, request.blobs), sent)


def test_pending_buffers_are_released_with_the_task_that_encoded_them():
    owner = Owner()
    array = np.zeros(2 * MB)
    data, blobs = serialization.encode({"a": array}, large=shm.Deferred(owner))
    token = blobs["b0"].shm_name
    assert token.startswith(shm.PENDING) and token in shm._pending
    del owner
    gc.collect()
    assert token not in shm._pending                      # the request was never sent
    with pytest.raises(shm.SegmentError, match="no longer held"):
        shm.materialize(pb.ExecuteRequest(args_json=data, blobs=blobs))


def test_a_sent_buffer_leaves_nothing_tied_to_its_long_lived_task(segments):
    owner = Owner()
    releases = []
    for _ in range(3):
        data, blobs = serialization.encode({"a": os.urandom(MB)}, large=shm.Deferred(owner))
        releases.append(shm._pending[blobs["b0"].shm_name][1])
        segments.export(pb.ExecuteRequest(args_json=data, blobs=blobs))
    shm.sweep(segments.prefix)
    assert not any(release.alive for release in releases)   # detached as each was sent


def test_a_failed_encode_leaves_no_segment_and_holds_nothing(segments):
    with pytest.raises(serialization.Unserializable, match="nan"):
        serialization.encode({"a": np.zeros(MB), "b": float("nan")}, large=segments)
    assert mine(segments.prefix) == []
    owner = Owner()
    before = set(shm._pending)
    with pytest.raises(serialization.Unserializable, match="object"):
        serialization.encode({"a": np.zeros(MB), "b": object()}, large=shm.Deferred(owner))
    assert set(shm._pending) == before


def test_a_full_directory_is_a_clear_error_and_leaves_nothing(segments, monkeypatch):
    def full(fd, offset, length):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full)
    size = 3 * MB
    with pytest.raises(shm.SpaceError) as caught:
        serialization.encode({"ok": os.urandom(MB), "a": np.zeros(size // 8)}, large=segments)
    message = str(caught.value)
    assert shm.SHM_DIR in message and f"a {MB}-byte" in message   # the first one failed
    assert mine(segments.prefix) == []

    # the host: the pipe's export fails the same way, removing what it wrote before
    calls = []

    def second_fails(fd, offset, length):
        calls.append(length)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", second_fails)
    data, blobs = serialization.encode({"a": os.urandom(MB), "b": np.zeros(size // 8)},
                                       large=shm.Deferred(Owner))
    with pytest.raises(shm.SpaceError) as caught:
        segments.export(pb.ExecuteRequest(args_json=data, blobs=blobs))
    assert len(calls) == 2 and f"no room for a {calls[1]}-byte" in str(caught.value)
    assert mine(segments.prefix) == []


def test_a_filesystem_without_fallocate_still_gets_the_segment(segments, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(95, "Operation not supported")
    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    sent = {"a": np.arange(MB, dtype=np.int32), "f": np.asfortranarray(np.ones((600, 400)))}
    data, blobs = serialization.encode(sent, large=segments)
    assert all(b.shm_name for b in blobs.values())
    assert_same(serialization.decode(data, blobs), sent)

    # there, a full directory shows when the copy runs out of room: the same clear error
    def full(fd, data, offset):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(shm.SpaceError, match=f"no room for a {MB * 4}-byte"):
        serialization.encode(sent, large=segments)
    assert mine(segments.prefix) == []


def test_an_in_process_decode_of_an_unsent_request_gets_the_values():
    """In-process fakes decode a request that never crossed a transport."""
    sent = values()
    data, blobs = serialization.encode(sent, large=shm.Deferred(Owner))
    out = serialization.decode(data, blobs)
    assert_same(out, sent)
    assert out["fortran"] is not sent["fortran"]         # a copy, as a transport would give


def test_the_context_sink_is_the_default_and_plain_dumps_ignore_it(segments):
    token = serialization.LARGE.set(segments)
    try:
        data, blobs = serialization.encode({"a": os.urandom(MB)})
        assert blobs["b0"].shm_name.startswith(segments.prefix)
        assert serialization.dumps({"a": b"x" * MB}).startswith(b'{"a":')
    finally:
        serialization.LARGE.reset(token)
    assert serialization.decode(data, blobs)["a"]
    assert mine(segments.prefix) == []
