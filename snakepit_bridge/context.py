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
import time
from typing import Any, Protocol

from snakepit_bridge import serialization
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.protocol import GRPC_MESSAGE_OPTIONS, SECRET_HEADER

__all__ = ["Cancellation", "HostCaller", "HostClient", "HostToolError", "SECRET_HEADER",
           "SessionContext"]


class HostToolError(Exception):
    """A call into the host failed: ``type``, ``message``, ``details``, ``category``."""

    def __init__(self, category: str, type_: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{type_ or category}: {message}")
        self.category, self.type, self.message = category, type_, message
        self.details = details or {}


class HostCaller(Protocol):
    """The worker's line to the host: :class:`HostClient` (gRPC) or the pipe's client.
    ``call`` blocks until the host answers and raises :class:`HostToolError` on failure
    (type ``"DEADLINE_EXCEEDED"`` when ``timeout`` passes first)."""

    address: str     # "" when the host cannot be probed separately (the pipe)
    worker_id: str

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any: ...


# One lock for every Cancellation's few state changes: a lock (and an Event) per request cost
# more than the whole of a short request in the worker.
_CANCEL_LOCK = threading.Lock()


class Cancellation:
    """How a request ends for its tool, set once by whichever comes first: the caller's
    cancel (``"cancelled"``), the request's deadline (``"timeout"``), or the end of a stream
    (``"finished"``). ``SessionContext.cancelled`` is true once it is set.

        cancel = Cancellation(deadline=time.monotonic() + 5.0)
        cancel.time_left()        # seconds until the deadline, or None without one
        cancel.set("timeout")     # first reason wins; wakes every wait()
    """

    __slots__ = ("deadline", "reason", "_event")

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline    # a time.monotonic() value
        self.reason: str | None = None
        self._event: threading.Event | None = None   # made by the first wait(): most never do

    def set(self, reason: str) -> None:
        with _CANCEL_LOCK:
            if self.reason is None:
                self.reason = reason
                if self._event is not None:
                    self._event.set()

    def is_set(self) -> bool:
        return self.reason is not None

    def wait(self, timeout: float | None = None) -> bool:
        with _CANCEL_LOCK:
            if self.reason is not None:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


class HostClient:
    """The worker's channel to the host's HostService (created on first use)."""

    def __init__(self, address: str, secret: str, worker_id: str, tls: Any = None) -> None:
        self.address, self.worker_id = address, worker_id
        self._tls = tls    # snakepit_bridge.tls.Tls: a remote placement's host service
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
                if self._tls is not None:
                    from snakepit_bridge.protocol import TLS_HOST_NAME
                    channel = grpc.secure_channel(
                        self.address, self._tls.channel_credentials(),
                        options=[*GRPC_MESSAGE_OPTIONS,
                                 *self._tls.channel_options(TLS_HOST_NAME)])
                else:
                    channel = grpc.insecure_channel(self.address,
                                                    options=list(GRPC_MESSAGE_OPTIONS))
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

    def __init__(self, *, session_id: str, correlation_id: str, host: HostCaller | None,
                 session_state: dict[str, Any] | None, metadata: dict[str, str],
                 cancel: Cancellation) -> None:
        self.session_id = session_id or None
        self.correlation_id = correlation_id
        self.metadata = metadata
        self.state: dict[str, Any] = session_state if session_state is not None else {}
        self._host = host
        self._cancel = cancel

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled the request or its deadline passed."""
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; True if the request was cancelled meanwhile."""
        return self._cancel.wait(timeout)

    @property
    def time_left(self) -> float | None:
        """Seconds before the request's deadline, or None when it has none."""
        return self._cancel.time_left()

    def _client(self) -> HostCaller:
        if self._host is None:
            raise HostToolError("host", "NoHost", "no host connection in this worker")
        return self._host

    def _call(self, method: str, request: Any) -> Any:
        """One host call, bounded by the request's deadline. A call that deadline cuts is the
        request's timeout, whichever side noticed first: the request is marked timed out
        (so the worker reports category ``timeout``, not the tool's error) and the tool gets
        a HostToolError of category ``timeout``."""
        client = self._client()
        left = self._cancel.time_left()
        try:
            return client.call(method, request, timeout=left)
        except HostToolError as exc:
            if left is None or exc.type != "DEADLINE_EXCEEDED":
                raise
            self._cancel.set("timeout")
            raise HostToolError("timeout", "Timeout", f"{method} was cut by the request's "
                                "deadline", {"method": method}) from None

    # -- host tools -------------------------------------------------------------------------
    def call_host_tool(self, name: str, /, **kwargs: Any) -> Any:
        """Call a tool registered on the host; blocks (use from sync tools)."""
        args_json, blobs = serialization.encode(kwargs)
        resp = self._call("CallHostTool", pb.CallHostToolRequest(
            tool=name, args_json=args_json, blobs=blobs, session_id=self.session_id or "",
            correlation_id=self.correlation_id, worker_id=self._client().worker_id))
        if not resp.success:
            raise_error(resp.error)
        return serialization.decode(resp.result_json, resp.blobs)

    async def acall_host_tool(self, name: str, /, **kwargs: Any) -> Any:
        """The async form of :meth:`call_host_tool` (does not block the worker's loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.call_host_tool(name, **kwargs))

    @property
    def host_tools(self) -> list[dict[str, Any]]:
        resp = self._call("ListHostTools",
                          pb.ListHostToolsRequest(session_id=self.session_id or ""))
        return [{"name": t.name, "description": t.description,
                 "parameters": [p.name for p in t.parameters]} for t in resp.tools]

    # -- session variables ------------------------------------------------------------------
    def get_variable(self, name: str) -> Any:
        resp = self._call("GetVariable", pb.GetVariableRequest(
            session_id=self.session_id or "", name=name))
        if not resp.success:
            raise_error(resp.error)
        return serialization.decode(resp.value_json, resp.blobs)

    def set_variable(self, name: str, value: Any, *, type: str = "",
                     constraints: dict[str, Any] | None = None) -> Any:
        value_json, blobs = serialization.encode(value)
        resp = self._call("SetVariable", pb.SetVariableRequest(
            session_id=self.session_id or "", name=name, value_json=value_json, blobs=blobs,
            type=type, constraints_json=serialization.dumps(constraints) if constraints else b""))
        if not resp.success:
            raise_error(resp.error)
        return serialization.decode(resp.value_json, resp.blobs)
