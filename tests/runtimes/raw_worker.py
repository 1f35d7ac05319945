"""A worker written from protos/README.md alone: plain grpcio, no snakepit_bridge framework
(only the generated messages). Tools: add, echo, count (stream)."""

import argparse
import concurrent.futures
import json
import os
import sys
import threading

import grpc

from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.proto import bridge_pb2_grpc as pbg

p = argparse.ArgumentParser()
for flag in ("--worker-id", "--host-address", "--log-level"):
    p.add_argument(flag, default="")
for flag in ("--ready-fd", "--max-concurrency"):
    p.add_argument(flag, type=int, default=1)
for flag in ("--heartbeat-interval", "--heartbeat-timeout", "--shutdown-grace"):
    p.add_argument(flag, type=float, default=0)
p.add_argument("--no-dependent", action="store_true")
opts = p.parse_args()
SECRET = os.environ.pop("SNAKEPIT_SECRET")
done = threading.Event()


def ok(value):
    return pb.ExecuteResponse(success=True, result_json=json.dumps(value).encode())


class Raw(pbg.WorkerServiceServicer):
    def _auth(self, context):
        if dict(context.invocation_metadata()).get("x-snakepit-secret") != SECRET:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no")

    def Ping(self, request, context):
        self._auth(context)
        return pb.PingResponse(message="pong", worker_id=opts.worker_id, pid=os.getpid())

    def Heartbeat(self, request, context):
        self._auth(context)
        return pb.HeartbeatResponse(seq=request.seq, worker_id=opts.worker_id)

    def Describe(self, request, context):
        self._auth(context)
        return pb.DescribeResponse(adapter="raw", language="python-raw",
                                   tools=[pb.ToolSpec(name="add"), pb.ToolSpec(name="echo"),
                                          pb.ToolSpec(name="count", streaming=True)])

    def Execute(self, request, context):
        self._auth(context)
        args = json.loads(request.args_json or b"{}")
        if request.tool == "add":
            return ok(args["a"] + args["b"])
        if request.tool == "echo":
            return ok(args)
        return pb.ExecuteResponse(success=False, error=pb.ErrorInfo(
            category="unknown_tool", type="UnknownTool", message=f"no tool {request.tool}",
            details_json=json.dumps({"available": ["add", "echo", "count"]}).encode()))

    def ExecuteStream(self, request, context):
        self._auth(context)
        n = json.loads(request.args_json or b"{}").get("n", 3)
        for i in range(n):
            yield pb.ToolChunk(chunk_id=i + 1, data_json=json.dumps({"i": i}).encode())
        yield pb.ToolChunk(chunk_id=n + 1, is_final=True)


server = grpc.server(concurrent.futures.ThreadPoolExecutor(opts.max_concurrency + 4))
pbg.add_WorkerServiceServicer_to_server(Raw(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
os.write(opts.ready_fd, (json.dumps({"port": port, "pid": os.getpid()}) + "\n").encode())
os.close(opts.ready_fd)
while os.read(0, 4096):     # exit when the host is gone
    pass
server.stop(0)
sys.exit(4)
