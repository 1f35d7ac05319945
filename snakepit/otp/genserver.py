"""GenServer: a stateful server task with a bounded mailbox, usable as a supervised child.

    class Counter(otp.GenServer):
        async def init(self, start):                    # -> the initial state
            return start
        async def handle_call(self, request, state):    # -> (reply, new_state)
            return state, state
        async def handle_cast(self, request, state):    # -> new_state
            return state + request
        async def terminate(self, reason, state):       # optional; runs on every stop
            ...

    registry = otp.Registry()
    spec = otp.ChildSpec(id="counter", start=Counter.start_link(0, name=registry.via("counter")))
    await otp.cast(registry.via("counter"), 1)
    await otp.call(registry.via("counter"), "get", timeout=5.0)     # -> 1

Rules (as OTP's ``gen_server``): requests are handled one at a time, in arrival order. An
exception in a handler crashes the server: ``terminate(exc, state)`` runs, the server's task
exits with that exception (its supervisor restarts it with a fresh ``init`` state) and the
caller of that request gets :class:`ServerCrashed` carrying it. A call without a reply within
``timeout`` raises :class:`CallTimeout` and the server keeps running (its late reply is
dropped). A call, cast or stop aimed at no live server raises :class:`NotRunning`; callers
still waiting when the server stops get :class:`NotRunning` (it stopped) or
:class:`ServerCrashed` (it crashed), never a hang. A full mailbox (``mailbox_size``, a class
attribute, default 100) makes ``cast`` and ``call`` wait: back-pressure instead of unbounded
memory. Each start makes a fresh instance of the class (called with no arguments; the
``start_link`` arguments go to ``init``), so instance attributes do not survive a restart;
state does not either (it comes from ``init``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Awaitable, Callable, Hashable

import trio

from snakepit.otp.child import shielded_cleanup
from snakepit.otp.errors import CallTimeout, NotRunning, OTPError, ServerCrashed, Shutdown
from snakepit.otp.registry import Via

NORMAL = "normal"
SHUTDOWN = "shutdown"


class _Reply:
    """Where one call's outcome lands. Setting it twice (or after the caller left) is a no-op."""

    __slots__ = ("event", "value", "error")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        if not self.event.is_set():
            self.value = value
            self.event.set()

    def fail(self, error: BaseException) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()


class ServerRef:
    """A running server: what ``start_link`` reports as started (OTP's pid).

        ref = await nursery.start(Counter.start_link(0))
        await ref.cast(1); await ref.call("get")        # -> 1
        await ref.stop()                                 # terminate("normal", state), then exit
    """

    def __init__(self, name: Hashable, mailbox_size: float) -> None:
        self.name = name
        self._send, self._recv = trio.open_memory_channel[tuple[Any, ...]](mailbox_size)
        self._pending: set[_Reply] = set()
        self._task: trio.lowlevel.Task | None = None
        self._stopped = False
        self._reason: Any = None   # why it stopped: "normal", "shutdown" or the exception

    @property
    def running(self) -> bool:
        return not self._stopped

    def statistics(self) -> trio.MemoryChannelStatistics:
        """The mailbox's statistics (``current_buffer_used``, ``tasks_waiting_send``, ...)."""
        return self._send.statistics()

    async def call(self, request: Any, timeout: float = 5.0) -> Any:
        """Send ``request`` to ``handle_call`` and wait for its reply (at most ``timeout`` s,
        mailbox wait included)."""
        if self._task is trio.lowlevel.current_task():
            raise RuntimeError(f"server {self.name!r} called itself (it would wait forever)")
        return await self._ask("call", request, timeout)

    async def cast(self, request: Any) -> None:
        """Send ``request`` to ``handle_cast``; returns once it is in the mailbox (waits while
        the mailbox is full)."""
        await self._post(("cast", request, None))

    async def stop(self, reason: Any = NORMAL, timeout: float = math.inf) -> None:
        """Stop the server after the requests already in its mailbox; returns once
        ``terminate(reason, state)`` has run. ``"normal"`` is a normal exit, ``"shutdown"`` a
        shutdown exit, any other reason an abnormal exit (the task raises ServerCrashed)."""
        await self._ask("stop", reason, timeout)

    async def _ask(self, kind: str, request: Any, timeout: float) -> Any:
        """Post a request that is answered, and wait for the answer (or a timeout, or the
        server's end: every pending reply is failed when it stops)."""
        _check_timeout(timeout)
        reply = _Reply()
        self._pending.add(reply)
        try:
            with trio.move_on_after(timeout):
                await self._post((kind, request, reply))
                await reply.event.wait()
        finally:
            self._pending.discard(reply)
        if not reply.event.is_set():
            raise CallTimeout(self.name, request if kind == "call" else (kind, request), timeout)
        if reply.error is not None:
            raise reply.error
        return reply.value

    async def _post(self, message: tuple[Any, ...]) -> None:
        if self._stopped:
            raise self._error()
        try:
            await self._send.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._error() from None

    def _error(self) -> OTPError:
        """A fresh error for one caller (one exception object must not be raised by two
        tasks): ServerCrashed when the server crashed, else NotRunning."""
        if isinstance(self._reason, BaseException):
            return ServerCrashed(self.name, self._reason)
        return NotRunning(f"server {self.name!r} is not running")

    def _close(self, reason: Any) -> None:
        """Take no more requests; fail every caller still waiting."""
        self._stopped, self._reason = True, reason
        self._recv.close()   # senders blocked on a full mailbox wake with BrokenResourceError
        for reply in list(self._pending):
            reply.fail(self._error())

    def __repr__(self) -> str:
        return f"<ServerRef {self.name!r} {'running' if self.running else 'stopped'}>"


class GenServer:
    """Base class of a server; override ``init``, ``handle_call``, ``handle_cast`` and
    optionally ``terminate``. See the module docstring."""

    mailbox_size: int = 100

    async def init(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define async def init(self, ...)")

    async def handle_call(self, request: Any, state: Any) -> tuple[Any, Any]:
        raise NotImplementedError(f"{type(self).__name__} has no handle_call (got {request!r})")

    async def handle_cast(self, request: Any, state: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no handle_cast (got {request!r})")

    async def terminate(self, reason: Any, state: Any) -> None:
        """Runs on every stop, shielded, within the child's shutdown grace. ``reason`` is
        ``"normal"``, ``"shutdown"``, or the exception that crashed the server."""

    @classmethod
    def start_link(cls, *args: Any, name: Via | None = None) -> Callable[..., Awaitable[None]]:
        """A ``ChildSpec.start`` that runs a fresh server; ``init(*args)`` gives its state.
        ``name`` (``registry.via(key)``) is registered for the server's lifetime."""
        if name is not None and not isinstance(name, Via):
            raise TypeError(f"{cls.__name__}.start_link: name must be a registry.via(key), "
                            f"got {name!r}")
        size = cls.mailbox_size
        if isinstance(size, bool) or not (isinstance(size, int) and size >= 1 or size == math.inf):
            raise ValueError(f"{cls.__name__}.mailbox_size must be an int >= 1 or math.inf, "
                             f"got {size!r}")

        async def start(*, task_status: trio.TaskStatus[ServerRef] =
                        trio.TASK_STATUS_IGNORED) -> None:
            await _serve(cls(), args, name, task_status)

        start.__qualname__ = start.__name__ = f"{cls.__name__}.start_link"
        return start


async def _serve(server: GenServer, args: tuple[Any, ...], name: Via | None,
                 task_status: trio.TaskStatus[ServerRef]) -> None:
    label = name.key if name is not None else type(server).__name__
    state = await server.init(*args)
    ref = ServerRef(label, type(server).mailbox_size)
    ref._task = trio.lowlevel.current_task()
    registration = name.registry.register(name.key, ref) if name is not None \
        else contextlib.nullcontext()
    with registration:
        task_status.started(ref)
        holder = [state]
        stop_reply: _Reply | None = None
        reason: Any = SHUTDOWN
        try:
            reason, stop_reply = await _loop(server, ref, holder)
        except (trio.Cancelled, Shutdown):
            reason = SHUTDOWN
            raise
        except Exception as exc:
            reason = exc
            raise
        finally:
            ref._close(reason)
            try:
                with shielded_cleanup():
                    await server.terminate(reason, holder[0])
            except Exception as exc:   # as OTP: a crashing terminate becomes the exit reason
                if stop_reply is not None:
                    stop_reply.fail(ServerCrashed(label, exc))
                raise
            if stop_reply is not None:
                stop_reply.set(None)
    if reason == SHUTDOWN:
        raise Shutdown(f"server {label!r} stopped with reason 'shutdown'")
    if reason != NORMAL:
        raise ServerCrashed(label, reason)


async def _loop(server: GenServer, ref: ServerRef, holder: list[Any]
                ) -> tuple[Any, _Reply]:
    """Handle requests one at a time until a stop request; return its reason and reply."""
    async for kind, request, reply in ref._recv:
        if kind == "cast":
            holder[0] = await server.handle_cast(request, holder[0])
        elif kind == "call":
            try:
                result = await server.handle_call(request, holder[0])
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise TypeError(f"{type(server).__name__}.handle_call must return "
                                    f"(reply, new_state), got {result!r}")
            except Exception as exc:
                reply.fail(ServerCrashed(ref.name, exc))
                raise
            value, holder[0] = result
            reply.set(value)
        else:
            ref._pending.discard(reply)   # this stop is answered once terminate has run
            return request, reply
    raise AssertionError("the mailbox closed while the server was running")  # pragma: no cover


def resolve(target: ServerRef | Via, field: str = "server") -> ServerRef:
    """The ServerRef behind ``target`` (a ServerRef, or a Via resolved now)."""
    if isinstance(target, ServerRef):
        return target
    if isinstance(target, Via):
        ref = target.registry.whereis(target.key)
        if ref is None:
            raise NotRunning(f"no server registered as {target.key!r}")
        if not isinstance(ref, ServerRef):
            raise TypeError(f"{target!r} names {ref!r}, not a GenServer")
        return ref
    raise TypeError(f"{field} must be a ServerRef or a registry.via(key), got {target!r}")


async def call(server: ServerRef | Via, request: Any, timeout: float = 5.0) -> Any:
    """``await otp.call(registry.via("counter"), "get", timeout=5.0)``: see ``ServerRef.call``."""
    return await resolve(server).call(request, timeout)


async def cast(server: ServerRef | Via, request: Any) -> None:
    """``await otp.cast(registry.via("counter"), 1)``: see ``ServerRef.cast``."""
    await resolve(server).cast(request)


def _check_timeout(timeout: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0 (or math.inf), "
                         f"got {timeout!r}")
