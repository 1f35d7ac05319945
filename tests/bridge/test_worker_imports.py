"""A pipe worker serves before it imports numpy, grpc or OpenTelemetry (each is imported when
the first request that needs it arrives) and without attrs or argparse: checked in a real
worker process."""

import numpy as np
import pytest

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from worker_proc import pipe_worker, recv, send

HEAVY = ("numpy", "grpc", "opentelemetry", "attr", "argparse")


def call(host, fid, tool, args=None, **kw):
    raw, blobs = serialization.encode(args or {})
    send(host, pb.Frame(id=fid, execute=pb.ExecuteRequest(tool=tool, args_json=raw,
                                                          blobs=blobs, **kw)))
    reply = recv(host)
    assert reply.id == fid and reply.result.success, reply
    return serialization.decode(reply.result.result_json, reply.result.blobs)


def heavy_loaded(host, fid):
    return sorted({h for m in call(host, fid, "loaded_modules") for h in HEAVY
                   if m == h or m.startswith(h + ".")})


@pytest.fixture
def host():
    with pipe_worker("bridge_adapters:ModulesAdapter") as (_, host):
        yield host


def test_a_pipe_worker_serves_without_numpy_grpc_opentelemetry_attrs_or_argparse(host):
    assert call(host, 1, "add", {"a": 2, "b": 3}) == 5
    assert heavy_loaded(host, 2) == []


def test_the_collector_is_on_once_the_worker_serves(host):
    # (off while the worker imports its code: python -m snakepit_bridge)
    assert call(host, 1, "gc_enabled") is True


def test_numpy_is_imported_when_an_array_arrives(host):
    assert call(host, 1, "array_sum", {"array": np.arange(4.0)}) == 6.0
    assert heavy_loaded(host, 2) == ["numpy"]


def test_opentelemetry_is_imported_when_the_host_sends_trace_context(host):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert call(host, 1, "add", {"a": 1, "b": 1}, metadata={"traceparent": traceparent}) == 2
    assert heavy_loaded(host, 2) == ["opentelemetry"]
