"""A host call cut by the request's deadline is the request's timeout (category "timeout"),
whichever side notices the deadline first: the worker (its timer cancels the call) or the host
call's own deadline (DEADLINE_EXCEEDED). Both orders are forced here, not left to the load of
the machine, for the Python worker's dispatcher and for the Ruby worker's Job."""

import asyncio
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from snakepit_bridge import BaseAdapter, SessionContext, serialization, tool
from snakepit_bridge.context import HostToolError
from snakepit_bridge.dispatch import ToolDispatcher
from snakepit_bridge.proto import bridge_pb2 as pb

HERE = Path(__file__).parent
RUBY_LIB = HERE.parent.parent / "snakepit_bridge" / "ruby" / "lib"


class CallsTheHost(BaseAdapter):
    @tool
    def call_host(self, ctx: SessionContext) -> object:
        return ctx.call_host_tool("slow")


class FakeHost:
    """A host whose answer comes when the test says: ``host_first`` raises the call's own
    DEADLINE_EXCEEDED at once; ``worker_first`` answers only after the worker has replied."""

    address = ""
    worker_id = "py-test"

    def __init__(self, order: str) -> None:
        self.order = order
        self.timeouts: list[float | None] = []
        self.release = threading.Event()

    def call(self, method, request, timeout=None):
        self.timeouts.append(timeout)
        if self.order == "worker_first":
            assert self.release.wait(10), "the test never released the host call"
        raise HostToolError("host", "DEADLINE_EXCEEDED", f"{method} got no answer")


@pytest.mark.parametrize("order", ["worker_first", "host_first"])
def test_python_worker_reports_timeout_whichever_side_notices_first(order):
    host = FakeHost(order)
    # worker_first: a short deadline the worker's own timer reaches first; host_first: a long
    # one the (fake) host call's deadline beats
    timeout = 0.2 if order == "worker_first" else 30.0

    async def run() -> pb.ExecuteResponse:
        dispatcher = ToolDispatcher(CallsTheHost(), worker_id="py-test", host=host,
                                    max_concurrency=1)
        try:
            return await dispatcher.execute(pb.ExecuteRequest(tool="call_host", timeout=timeout))
        finally:
            host.release.set()
            dispatcher.close()

    resp = asyncio.run(run())
    assert not resp.success
    assert (resp.error.category, resp.error.type) == ("timeout", "Timeout"), resp.error
    assert serialization.loads(resp.error.details_json)["tool"] == "call_host"
    # the host call is bounded by what is left of the request's deadline
    assert host.timeouts and host.timeouts[0] is not None and 0 < host.timeouts[0] <= timeout


def test_a_host_call_without_a_request_deadline_is_not_a_timeout():
    host = FakeHost("host_first")

    async def run() -> pb.ExecuteResponse:
        dispatcher = ToolDispatcher(CallsTheHost(), worker_id="py-test", host=host,
                                    max_concurrency=1)
        try:
            return await dispatcher.execute(pb.ExecuteRequest(tool="call_host"))
        finally:
            dispatcher.close()

    resp = asyncio.run(run())
    assert (resp.error.category, resp.error.type) == ("tool", "HostToolError"), resp.error
    assert host.timeouts == [None]


def _ruby_missing() -> str | None:
    if shutil.which("ruby") is None:
        return "ruby is not installed (make runtimes)"
    probe = subprocess.run(["ruby", "-e", "require 'grpc'"], capture_output=True, text=True)
    return None if probe.returncode == 0 else "ruby-grpc is not installed (make runtimes)"


@pytest.mark.skipif(_ruby_missing() is not None, reason=str(_ruby_missing()))
@pytest.mark.parametrize("order", ["worker_first", "host_first"])
def test_ruby_job_reports_timeout_whichever_side_notices_first(order):
    out = subprocess.run(["ruby", str(HERE / "ruby_deadline.rb"), str(RUBY_LIB), order],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[:timeout, nil]", out.stdout + out.stderr
