"""Many calls of one tool: ``app.map`` (and ``Client.map``) over a lazily consumed iterable.

    async with app.map("add", ({"a": i, "b": 1} for i in range(100_000))) as results:
        async for value in results: ...

Each item is an ordinary ``execute`` (same timeout, session, error counting and telemetry) —
or, on the pipe transport with a plain (sync) iterable, one of a batch of consecutive items
sent to one worker in one frame (``Pool.execute_batch``): they run there in order, each with
its own timeout counted from its start, so an item's wait behind its batch is like a wait in
the queue. Batches start at one item and double while a batch twice as big would take at most
``BATCH_TIME`` (up to ``batch_size`` items; they halve when a batch takes more than twice
that), so slow tools keep their latency, a batch holds a worker for a few milliseconds at
most, and fast items share a frame's cost. At most two batches per worker slot are in the pool
at once, so other callers' requests interleave with a map's; a batch is formed when it can be
sent, of the items taken by then. An item that times out ends its batch; the items after it
are sent again. An async iterable is not batched: its next item may be a long
time coming.
At most ``window`` items are taken from the input ahead of the consumer — in flight or done but
not yet delivered — so memory stays bounded however long the input is. With ``ordered=True``
results come in input order, else as they complete. A failing item raises its error, with the
item's position in ``details["index"]``, after every earlier result was delivered (ordered) or
when it arrives (unordered); leaving the block early cancels what is in flight. Items wait in
the pool's ordinary FIFO queue, so other callers' requests interleave with a map's instead of
waiting for all of it.
"""

from __future__ import annotations

import collections
import math
from contextlib import asynccontextmanager
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

import trio

from snakepit.errors import InvalidArgumentsError, SnakepitError, TransportError

Batch = Callable[[list[Any]], Awaitable[list[Any]]]
from snakepit.otp import unwrap_group

MAX_WINDOW = 4096
# items in one batch frame at most: enough to spread a frame's cost thin (an `add` item costs
# ~10 us, so 256 hold a worker ~2.5 ms), and a bound on the window it implies
BATCH_SIZE = 256
# seconds a batch may take (its items' time): other callers' requests wait behind it
BATCH_TIME = 0.005
# results a consumer may take from what is already here before yielding to other tasks once
CHECKPOINT_EVERY = 64
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
    error in its place. The channel brings ``(indices, outcomes)``: the items' outcomes (a
    value, or the :class:`SnakepitError` the item failed with), a batch's in one message
    (its items in input order, not always consecutive: two batchers take turns); then
    ``(_FED, (ok, count or the input's error))``."""

    def __init__(self, recv: trio.MemoryReceiveChannel[Any], slots: trio.Semaphore,
                 ordered: bool) -> None:
        self._recv, self._slots, self._ordered = recv, slots, ordered
        self._ready: collections.deque[Any] = collections.deque()   # to deliver, in order
        self._done: dict[int, Any] = {}   # ordered: outcomes that came before their turn
        self._next = 0
        self._total = math.inf
        self._over = False
        self._unchecked = 0   # results delivered without yielding to trio

    def __aiter__(self) -> "_Results":
        return self

    async def __anext__(self) -> Any:
        if self._over:
            raise StopAsyncIteration
        if self._unchecked >= CHECKPOINT_EVERY:
            self._unchecked = 0
            await trio.lowlevel.checkpoint()
        while True:
            if self._ready:
                return self._deliver(self._ready.popleft())
            if self._ordered and self._next in self._done:
                return self._deliver(self._done.pop(self._next))
            if self._next >= self._total:
                self._over = True
                raise StopAsyncIteration
            try:   # what is already here costs no pass through trio's run loop
                indices, outcomes = self._recv.receive_nowait()
            except trio.WouldBlock:
                indices, outcomes = await self._recv.receive()
                self._unchecked = 0
            if indices is _FED:
                ok, value = outcomes
                if not ok:                      # the input itself raised
                    self._over = True
                    raise value
                self._total = value
            elif not self._ordered or (indices[0] == self._next and
                                       indices[-1] - indices[0] == len(indices) - 1):
                self._ready.extend(outcomes)   # (ordered: the next ones, consecutive)
            else:
                self._done.update(zip(indices, outcomes))

    def _deliver(self, outcome: Any) -> Any:
        self._next += 1
        self._unchecked += 1
        self._slots.release()
        if isinstance(outcome, SnakepitError):
            self._over = True
            raise outcome
        return outcome


@asynccontextmanager
async def open_map(execute: Callable[[Any], Awaitable[Any]],
                   args_iterable: Iterable[Any] | AsyncIterable[Any], *, ordered: bool = True,
                   window: int = 64, execute_batch: Batch | None = None, batch_size: int = 1,
                   batches: int = 2) -> AsyncIterator[AsyncIterator[Any]]:
    """The machinery of ``App.map``: ``execute(args)`` runs one item, ``execute_batch(list)``
    (if given) up to ``batch_size`` items, returning an outcome (a value or the
    :class:`SnakepitError` raised) per item that ran; at most ``batches`` at once."""
    _check(args_iterable, window)
    if execute_batch is None or hasattr(args_iterable, "__aiter__"):
        batch_size = 1
    size = 1   # the next batch's size: grows while items are short
    slots = trio.Semaphore(window)
    send, recv = trio.open_memory_channel[Any](math.inf)   # bounded by `slots`
    # items taken from the input, waiting for a batch (bounded by `slots` too), and the
    # batchers parked until one comes (or the input ends: `fed`)
    waiting: collections.deque[tuple[int, Any]] = collections.deque()
    arrived = trio.lowlevel.ParkingLot()
    fed = False

    def deliver(indices: list[int], outcomes: list[Any]) -> None:
        """The items' outcomes: a value, or the SnakepitError the item failed with (it learns
        its index)."""
        for i, outcome in zip(indices, outcomes):
            if isinstance(outcome, SnakepitError):
                outcome.details = {**outcome.details, "index": i}
        send.send_nowait((indices, outcomes))

    async def run_one(index: int, args: Any) -> None:
        try:
            value = await execute(args)
        except SnakepitError as exc:
            value = exc
        deliver([index], [value])

    async def batcher(nursery: trio.Nursery) -> None:
        """One of ``batches``: a batch is formed when it can be sent, of the items waiting
        then (up to ``size``), so a map's first items do not go one by one."""
        while True:
            if not waiting:
                if fed:
                    return
                await arrived.park()
                continue
            items = [waiting.popleft()]
            while waiting and len(items) < size:
                items.append(waiting.popleft())
            await run_items(items, nursery)

    async def run_items(items: list[tuple[int, Any]], nursery: trio.Nursery) -> None:
        nonlocal size
        assert execute_batch is not None
        while items:
            try:
                t0 = trio.current_time()
                outcomes = await execute_batch([args for _, args in items])
                if not outcomes:   # it would be sent again and again
                    raise TransportError(f"a batch of {len(items)} items came back with no "
                                         f"outcome", details={"items": len(items)})
                per_item = (trio.current_time() - t0) / max(1, len(outcomes))
                if per_item * 2 * size <= BATCH_TIME:
                    size = min(batch_size, 2 * size)
                elif per_item * size > 2 * BATCH_TIME:
                    size = max(1, size // 2)
            except InvalidArgumentsError:
                # an item refused before anything was sent: one by one, each with its index
                for index, args in items:
                    nursery.start_soon(run_one, index, args)
                return
            except SnakepitError as exc:   # the batch failed whole (crash, queue timeout, ...)
                deliver([items[0][0]], [exc])
                return
            deliver([index for index, _ in items[:len(outcomes)]], outcomes)
            items = items[len(outcomes):]   # after a timeout: the ones that never ran

    async def feed(nursery: trio.Nursery) -> None:
        nonlocal fed
        count = 0
        try:
            if batch_size > 1:
                for _ in range(batches):
                    nursery.start_soon(batcher, nursery)
            async for args in _items(args_iterable):
                try:
                    slots.acquire_nowait()
                except trio.WouldBlock:
                    await slots.acquire()
                if batch_size > 1:
                    waiting.append((count, args))
                    if arrived:
                        arrived.unpark()
                else:
                    nursery.start_soon(run_one, count, args)
                count += 1
        except Exception as exc:   # the caller's iterable raised: the map ends with it
            send.send_nowait((_FED, (False, exc)))
            return
        finally:
            fed = True   # the batchers send what is waiting, then end
            arrived.unpark_all()
        send.send_nowait((_FED, (True, count)))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed, nursery)
            yield _Results(recv, slots, ordered)
            nursery.cancel_scope.cancel()    # left early: what is in flight is cancelled
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None
