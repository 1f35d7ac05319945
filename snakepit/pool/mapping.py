"""Many calls of one tool: ``app.map`` (and ``Client.map``) over a lazily consumed iterable.

    async with app.map("add", ({"a": i, "b": 1} for i in range(100_000))) as results:
        async for value in results: ...

Each item is an ordinary ``execute`` (same timeout, session, error counting and telemetry).
At most ``window`` items are taken from the input ahead of the consumer — in flight or done but
not yet delivered — so memory stays bounded however long the input is. With ``ordered=True``
results come in input order, else as they complete. A failing item raises its error, with the
item's position in ``details["index"]``, after every earlier result was delivered (ordered) or
when it arrives (unordered); leaving the block early cancels what is in flight. Items wait in
the pool's ordinary FIFO queue, so other callers' requests interleave with a map's instead of
waiting for all of it.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

import trio

from snakepit.errors import InvalidArgumentsError, SnakepitError
from snakepit.otp import unwrap_group

MAX_WINDOW = 4096
_FED = object()   # the input is exhausted: the item count follows


async def _items(source: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if hasattr(source, "__aiter__"):
        async for item in source:    # type: ignore[union-attr]
            yield item
    else:
        for item in source:          # type: ignore[union-attr]
            yield item


def _check(args_iterable: Any, window: int) -> None:
    if isinstance(args_iterable, (dict, str, bytes)) or not (
            hasattr(args_iterable, "__iter__") or hasattr(args_iterable, "__aiter__")):
        raise InvalidArgumentsError(
            f"args_iterable must be an iterable (or async iterable) of argument dicts, got "
            f"{type(args_iterable).__name__}", details={"field": "args_iterable"})
    if isinstance(window, bool) or not isinstance(window, int) or not \
            1 <= window <= MAX_WINDOW:
        raise InvalidArgumentsError(f"window must be an integer in 1..{MAX_WINDOW}, got "
                                    f"{window!r}", details={"field": "window"})


class _Results:
    """What ``map`` yields: results as ``ordered`` asks, raising the first failing item's
    error in its place."""

    def __init__(self, recv: trio.MemoryReceiveChannel[Any], slots: trio.Semaphore,
                 ordered: bool) -> None:
        self._recv, self._slots, self._ordered = recv, slots, ordered
        self._done: dict[int, tuple[bool, Any]] = {}
        self._next = 0
        self._total = math.inf
        self._over = False

    def __aiter__(self) -> "_Results":
        return self

    async def __anext__(self) -> Any:
        if self._over:
            raise StopAsyncIteration
        while True:
            if self._ordered and self._next in self._done:
                ok, value = self._done.pop(self._next)
                return self._deliver(ok, value)
            if self._next >= self._total:
                self._over = True
                raise StopAsyncIteration
            index, ok, value = await self._recv.receive()
            if index is _FED:
                if not ok:                      # the input itself raised
                    self._over = True
                    raise value
                self._total = value
            elif self._ordered:
                self._done[index] = (ok, value)
            else:
                return self._deliver(ok, value)

    def _deliver(self, ok: bool, value: Any) -> Any:
        self._next += 1
        self._slots.release()
        if not ok:
            self._over = True
            raise value
        return value


@asynccontextmanager
async def open_map(execute: Callable[[Any], Awaitable[Any]],
                   args_iterable: Iterable[Any] | AsyncIterable[Any], *, ordered: bool = True,
                   window: int = 64) -> AsyncIterator[AsyncIterator[Any]]:
    """The machinery of ``App.map``: ``execute(args)`` runs one item."""
    _check(args_iterable, window)
    slots = trio.Semaphore(window)
    send, recv = trio.open_memory_channel[Any](math.inf)   # bounded by `slots`

    async def run_one(index: int, args: Any) -> None:
        try:
            value = await execute(args)
        except SnakepitError as exc:
            exc.details = {**exc.details, "index": index}
            send.send_nowait((index, False, exc))
            return
        send.send_nowait((index, True, value))

    async def feed(nursery: trio.Nursery) -> None:
        count = 0
        try:
            async for args in _items(args_iterable):
                await slots.acquire()
                nursery.start_soon(run_one, count, args)
                count += 1
        except Exception as exc:   # the caller's iterable raised: the map ends with it
            send.send_nowait((_FED, False, exc))
            return
        send.send_nowait((_FED, True, count))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed, nursery)
            yield _Results(recv, slots, ordered)
            nursery.cancel_scope.cancel()    # left early: what is in flight is cancelled
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None
