"""Reading a sync generator ahead, on the tool's thread, so its items do not cost a thread hop
each.

    ahead = ReadAhead(loop, convert=encode_chunk)
    items, running = ahead.take_nowait()            # what is held now; is a step running?
    if not items and not running:
        ahead.begin()
        step = run_in_thread(ahead.run, gen, cancel)   # fills ahead until it holds enough
    elif not items:
        await ahead.wait()                          # the next item, or the step's end

One thread step pulls items until it holds ``MAX_ITEMS`` items or ``MAX_BYTES`` of converted
items, ``stop`` is set (the stream was cancelled or has finished), an item is the ``last`` one,
or the generator ends or raises (the end and the exception are items too: ``END`` and a
:class:`Raised`). The loop is woken only when it waits for an item, so a lone item reaches it
at once and a fast generator's items arrive in batches. Only the consumer starts a step, so it
bounds how far the generator runs ahead (the stream starts the next step when it takes a batch:
at most two steps ahead).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, Callable, Iterator

MAX_ITEMS = 64
MAX_BYTES = 1 << 20
END = object()


class Raised:
    """The exception the generator (or ``convert``) raised: the last item."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ReadAhead:
    """Items of one generator, pulled on a thread and taken on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 convert: Callable[[Any], Any] = lambda item: item, *,
                 size: Callable[[Any], int] = lambda item: 0,
                 last: Callable[[Any], bool] = lambda item: False) -> None:
        self._loop, self._convert, self._size, self._last = loop, convert, size, last
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._waiting = False         # the loop waits on _arrived: the next item wakes it
        self._arrived = asyncio.Event()
        self._running = False         # a step is on the thread (or about to be)
        self.ended = False            # END or Raised has been pulled: no more steps

    def begin(self) -> None:
        """A step is about to be submitted (before ``run`` starts on its thread)."""
        with self._lock:
            self._running = True

    def run(self, gen: Iterator[Any], stop: Any) -> None:
        """One step, on the tool's thread: pull until enough is held (see the module)."""
        held = 0
        try:
            while not stop.is_set():
                try:
                    item = self._convert(next(gen))
                except StopIteration:
                    self._put(END)
                    return
                except Exception as exc:
                    self._put(Raised(exc))
                    return
                if self._last(item):   # the generator said so: it is not advanced past this
                    self._put(item, ends=True)
                    return
                held += self._size(item)
                if self._put(item) >= MAX_ITEMS or held >= MAX_BYTES:
                    return
        finally:
            with self._lock:
                self._running = False
            self._wake()   # the step is over: a waiting loop starts the next one or ends

    def _put(self, item: Any, ends: bool = False) -> int:
        with self._lock:
            self._items.append(item)
            if ends or item is END or isinstance(item, Raised):
                self.ended = True
            held = len(self._items)
        self._wake()
        return held

    def _wake(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, False
        if waiting:
            try:
                self._loop.call_soon_threadsafe(self._arrived.set)
            except RuntimeError:   # the loop is closed: the worker is exiting
                pass

    def take_nowait(self) -> tuple[list[Any], bool]:
        """(the items held now, possibly none; whether a step is running). With none held and
        a step running, the next item or the step's end wakes :meth:`wait`."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            if not items and self._running:
                self._waiting = True
                self._arrived.clear()
            return items, self._running

    async def wait(self) -> None:
        """Until an item arrives or the step ends, after ``take_nowait`` found none."""
        await self._arrived.wait()
