"""ExpiryIndex: which sessions have expired, without looking at the ones that have not.

    index = ExpiryIndex()
    index.add(session)                          # at create: keyed by session.expires_at
    index.advance(now, sessions.get)            # O(k log n) for the k entries that came due
    for session in index.take_due(): ...        # expired, still in the store

A session's expiry moves later every time it is used, and re-keying a heap on every access
would cost O(log n) per call for nothing: most sessions are used many times per TTL. So the heap
keeps each session under the expiry it had when it was (re)inserted, which is never later than
its real one; when that key comes due, ``advance`` reads the real expiry and either moves the
session to ``due`` or pushes it again under the new key. A session is re-pushed at most once per
TTL that it stays in use, so the work is amortized O(log n) per store operation.

Entries of deleted or replaced sessions are recognized by identity (the store no longer maps the
id to that object) and dropped when they surface, or in one O(n) rebuild once they outnumber
the live entries (amortized O(1) per deletion).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable, Iterable, Protocol


class _Expiring(Protocol):
    id: str

    @property
    def expires_at(self) -> float: ...


class ExpiryIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()        # ties: never compare two sessions
        self.due: dict[str, Any] = {}        # expired, not yet removed from the store

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, session: _Expiring) -> None:
        heapq.heappush(self._heap, (session.expires_at, next(self._seq), session))

    def discard(self, session_id: str) -> None:
        """The store dropped this id: it is no longer due (its heap entry goes lazily)."""
        self.due.pop(session_id, None)

    def advance(self, now: float, current: Callable[[str], Any]) -> None:
        """Move every session whose real expiry is ``<= now`` into ``due``; ``current(id)``
        is the store's lookup, so entries of deleted or replaced sessions are dropped."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, session = heapq.heappop(heap)
            if current(session.id) is not session:
                continue
            expires_at = session.expires_at
            if expires_at <= now:
                self.due[session.id] = session
            else:
                heapq.heappush(heap, (expires_at, next(self._seq), session))

    def take_due(self) -> list[Any]:
        due, self.due = list(self.due.values()), {}
        return due

    def compact(self, live: Iterable[_Expiring], live_count: int) -> None:
        """Rebuild from the live sessions once dead entries outnumber them."""
        if len(self._heap) > 2 * live_count + 64:
            self._heap = [(s.expires_at, next(self._seq), s) for s in live]
            heapq.heapify(self._heap)
