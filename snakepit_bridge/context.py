"""SessionContext: what a tool knows about its request, and its line back to the host.

    @tool
    def summarize(self, text: str, ctx: SessionContext) -> str:
        style = ctx.get_variable("style")              # a session variable, via the host
        words = ctx.call_host_tool("tokenize", text=text)
        if ctx.cancelled: ...                          # the caller gave up
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb

SECRET_HEADER = "x-snakepit-secret"


class HostToolError(Exception):
    """A call into the host failed: ``type``, ``message``, ``details``, ``category``."""

    def __init__(self, category: str, type_: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{type_ or category}: {message}")
        self.category, self.type, self.message = category, type_, message
        self.details = details or {}


class HostClient:
    """The worker's channel to the host's HostService (created on first use)."""

    def __init__(self, address: str, secret: str, worker_id: str) -> None:
        self.address, self.worker_id = address, worker_id
        self._metadata = ((SECRET_HEADER, secret),)
        self._stub: Any = None
        self._lock = threading.Lock()

    def stub(self) -> Any:
        if not self.address:
            raise HostToolError("host", "NoHost", "this worker was started without a host "
                                "address (--host-address)")
        with self._lock:
            if self._stub is None:
                import grpc
                from snakepit_bridge.proto import bridge_pb2_grpc
                channel = grpc.insecure_channel(self.address, options=[
                    ("grpc.max_send_message_length", 256 * 1024 * 1024),
                    ("grpc.max_receive_message_length", 256 * 1024 * 1024)])
                self._stub = bridge_pb2_grpc.HostServiceStub(channel)  # type: ignore[no-untyped-call]
            return self._stub

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        import grpc
        try:
            return getattr(self.stub(), method)(request, metadata=self._metadata,
                                                timeout=timeout)
        except grpc.RpcError as exc:
            raise HostToolError("host", exc.code().name, exc.details() or "") from None


def raise_error(error: pb.ErrorInfo) -> None:
    details = serialization.loads(error.details_json) if error.details_json else {}
    raise HostToolError(error.category, error.type, error.message,
                        details if isinstance(details, dict) else {"details": details})


class SessionContext:
    """Per-request context handed to tools that ask for it."""

    def __init__(self, *, session_id: str, correlation_id: str, host: HostClient | None,
                 session_state: dict[str, Any] | None, metadata: dict[str, str],
                 cancel_event: threading.Event) -> None:
        self.session_id = session_id or None
        self.correlation_id = correlation_id
        self.metadata = metadata
        self.state: dict[str, Any] = session_state if session_state is not None else {}
        self._host = host
        self._cancel = cancel_event

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled the request or its deadline passed."""
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; True if the request was cancelled meanwhile."""
        return self._cancel.wait(timeout)

    def _client(self) -> HostClient:
        if self._host is None:
            raise HostToolError("host", "NoHost", "no host connection in this worker")
        return self._host

    # -- host tools -------------------------------------------------------------------------
    def call_host_tool(self, name: str, /, **kwargs: Any) -> Any:
        """Call a tool registered on the host; blocks (use from sync tools)."""
        args_json, blobs = serialization.encode(kwargs)
        client = self._client()
        resp = client.call("CallHostTool", pb.CallHostToolRequest(
            tool=name, args_json=args_json, blobs=blobs, session_id=self.session_id or "",
            correlation_id=self.correlation_id, worker_id=client.worker_id))
        if not resp.success:
            raise_error(resp.error)
        return serialization.decode(resp.result_json, resp.blobs)

    async def acall_host_tool(self, name: str, /, **kwargs: Any) -> Any:
        """The async form of :meth:`call_host_tool` (does not block the worker's loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.call_host_tool(name, **kwargs))

    @property
    def host_tools(self) -> list[dict[str, Any]]:
        resp = self._client().call("ListHostTools",
                                   pb.ListHostToolsRequest(session_id=self.session_id or ""))
        return [{"name": t.name, "description": t.description,
                 "parameters": [p.name for p in t.parameters]} for t in resp.tools]

    # -- session variables ------------------------------------------------------------------
    def get_variable(self, name: str) -> Any:
        resp = self._client().call("GetVariable", pb.GetVariableRequest(
            session_id=self.session_id or "", name=name))
        if not resp.success:
            raise_error(resp.error)
        return serialization.decode(resp.value_json, resp.blobs)

    def set_variable(self, name: str, value: Any, *, type: str = "",
                     constraints: dict[str, Any] | None = None) -> Any:
        value_json, blobs = serialization.encode(value)
        resp = self._client().call("SetVariable", pb.SetVariableRequest(
            session_id=self.session_id or "", name=name, value_json=value_json, blobs=blobs,
            type=type, constraints_json=serialization.dumps(constraints) if constraints else b""))
        if not resp.success:
            raise_error(resp.error)
        return serialization.decode(resp.value_json, resp.blobs)
