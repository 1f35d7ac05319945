"""A worker's tool calling back into the host, against a fake HostService (plain grpcio)."""

import concurrent.futures
import os
import sys

import grpc
import numpy as np
import pytest

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg

sys.path.insert(0, os.path.dirname(__file__))
from worker_proc import SECRET, call, result, worker  # noqa: E402


class FakeHost(pbg.HostServiceServicer):
    def __init__(self):
        self.calls = []

    def CallHostTool(self, request, context):
        md = dict(context.invocation_metadata())
        if md.get("x-snakepit-secret") != SECRET:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no secret")
        args = serialization.decode(request.args_json, request.blobs)
        self.calls.append((request.tool, args, request.session_id, request.worker_id))
        if request.tool == "host_echo":
            data, blobs = serialization.encode(args)
            return pb.ExecuteResponse(success=True, result_json=data, blobs=blobs)
        if request.tool == "host_fail":
            return pb.ExecuteResponse(success=False, error=pb.ErrorInfo(
                category="tool", type="PermissionError", message="not allowed",
                details_json=b'{"why": "test"}'))
        return pb.ExecuteResponse(success=False, error=pb.ErrorInfo(
            category="unknown_tool", type="UnknownTool", message=f"no {request.tool}"))


@pytest.fixture
def host():
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    fake = FakeHost()
    pbg.add_HostServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"127.0.0.1:{port}"
    server.stop(0).wait()


def test_call_host_tool_each_argument_type(host):
    fake, address = host
    args = {"s": "a string", "n": 3, "f": 1.5, "l": [1, "x"], "d": {"k": [1]},
            "b": b"\x00\x01", "arr": np.arange(4, dtype=np.int32)}
    with worker("snakepit_bridge.adapters.showcase:ShowcaseAdapter", "--host-address",
                address, "--worker-id", "w-7") as (_, _, stub):
        out = result(call(stub, "call_host_demo", {"tool_name": "host_echo", "args": args},
                          session_id="sess"))
        got = out["host_result"]
        np.testing.assert_array_equal(got.pop("arr"), args["arr"])
        assert got == {k: v for k, v in args.items() if k != "arr"}
        assert fake.calls[0][2:] == ("sess", "test-1") or fake.calls[0][2] == "sess"
        failed = call(stub, "call_host_demo", {"tool_name": "host_fail"})
        assert not failed.success and failed.error.type == "HostToolError"
        assert "PermissionError" in failed.error.message and "not allowed" in failed.error.message
        missing = call(stub, "call_host_demo", {"tool_name": "nope"})
        assert missing.error.type == "HostToolError" and "UnknownTool" in missing.error.message
