"""Worker-side telemetry: events queued for the host, with bounded memory.

    from snakepit_bridge import telemetry
    telemetry.emit("model.loaded", {"seconds": 1.2}, {"model": "small"})
    with telemetry.span("inference", {"batch": 8}):
        ...                                  # emits inference.start / inference.stop

Events reach the host as ``("snakepit", "python", *name.split("."))`` with the worker id and
the request's correlation id. The host controls sampling, enabling and allow/deny filters at
run time; when the host is slow, events are dropped (and counted), never buffered without
bound. Names are dot-separated, at most ``MAX_NAME`` characters.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import threading
import time
from typing import Any, Iterator

MAX_NAME = 128
MAX_QUEUE = 1000
MAX_RATE = 1000.0  # events per second, averaged over a one-second window

correlation: contextvars.ContextVar[str] = contextvars.ContextVar("snakepit_correlation",
                                                                  default="")


class CorrelationFilter:
    """Adds `` correlation_id=...`` to log records made while a request is being served."""

    def filter(self, record: Any) -> bool:
        corr = correlation.get()
        record.correlation = f" correlation_id={corr}" if corr else ""
        return True


class _Buffer:
    """The process's event queue (process-wide, as ``logging``'s handlers are)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: collections.deque[tuple[Any, ...]] = collections.deque()
        self.dropped = 0
        self.enabled = True
        self.sampling_rate = 1.0
        self.allow: tuple[str, ...] = ()
        self.deny: tuple[str, ...] = ()
        self.window_start = 0.0
        self.window_count = 0
        self.waker: Any = None   # set by the server: called (thread-safe) when events arrive

    def configure(self, enabled: bool, sampling_rate: float, allow: Any, deny: Any) -> None:
        with self.lock:
            self.enabled = enabled
            self.sampling_rate = min(1.0, max(0.0, sampling_rate))
            self.allow, self.deny = tuple(allow), tuple(deny)

    def _wanted(self, name: str) -> bool:
        if not self.enabled:
            return False
        if self.allow and not any(name == p or name.startswith(p + ".") for p in self.allow):
            return False
        if any(name == p or name.startswith(p + ".") for p in self.deny):
            return False
        if self.sampling_rate >= 1.0:
            return True
        import random   # sampled telemetry only: not imported by every worker (ADR 0003)
        return random.random() < self.sampling_rate

    def put(self, name: str, measurements: dict[str, Any], metadata: dict[str, Any],
            force: bool = False) -> None:
        now = time.time()
        with self.lock:
            if not force and not self._wanted(name):
                return
            if now - self.window_start >= 1.0:
                self.window_start, self.window_count = now, 0
            self.window_count += 1
            if self.window_count > MAX_RATE or len(self.events) >= MAX_QUEUE:
                self.dropped += 1
                return
            self.events.append((name, measurements, metadata, now, correlation.get()))
            waker = self.waker
        if waker is not None:
            waker()

    def drain(self) -> tuple[list[tuple[Any, ...]], int]:
        with self.lock:
            events, self.events = list(self.events), collections.deque()
            dropped, self.dropped = self.dropped, 0
        return events, dropped


buffer = _Buffer()


def emit(name: str, measurements: dict[str, Any] | None = None,
         metadata: dict[str, Any] | None = None) -> None:
    """Queue one event for the host. Never blocks, never raises for a slow host."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise ValueError(f"telemetry event name must be a non-empty string of at most "
                         f"{MAX_NAME} characters, got {name!r:.80}")
    buffer.put(name, dict(measurements or {}), dict(metadata or {}))


@contextlib.contextmanager
def span(name: str, metadata: dict[str, Any] | None = None) -> Iterator[None]:
    """Emit ``name.start``, then ``name.stop`` with ``duration`` (or ``name.exception``)."""
    meta = dict(metadata or {})
    emit(f"{name}.start", {}, meta)
    t0 = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        emit(f"{name}.exception", {"duration": time.perf_counter() - t0},
             {**meta, "error": type(exc).__name__})
        raise
    emit(f"{name}.stop", {"duration": time.perf_counter() - t0}, meta)
