"""The telemetry event bus: handlers attached to event names, called synchronously.

    def on_stop(event, measurements, metadata, config):
        print(event, measurements["duration"], metadata["tool"])

    snakepit.telemetry.attach("my-logger", ("snakepit", "request", "execute", "stop"), on_stop)
    snakepit.telemetry.detach("my-logger")

Events are tuples of strings. A handler runs in the code that emits the event (keep it quick);
one that raises is detached and reported once — it never breaks the emitting code. With no
handler attached for an event, :meth:`TelemetryHub.execute` is one dict lookup, and
:meth:`TelemetryHub.listening` tells the emitting code not to build the event at all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterable, Iterator

from snakepit.errors import AlreadyRegistered, InvalidArgumentsError

log = logging.getLogger("snakepit.telemetry")

Event = tuple[str, ...]
Handler = Callable[[Event, dict[str, Any], dict[str, Any], Any], Any]


Entry = tuple[str, Handler, Any, "Callable[[], bool] | None"]


class TelemetryHub:
    def __init__(self) -> None:
        self._handlers: dict[str, tuple[tuple[Event, ...], Entry]] = {}
        self._index: dict[Event, list[Entry]] = {}
        self._always: set[Event] = set()   # events with an unconditional handler
        self._checks: dict[Event, list[Callable[[], bool]]] = {}   # the others' only_if

    def attach(self, handler_id: str, event: Event, fn: Handler, config: Any = None, *,
               only_if: Callable[[], bool] | None = None) -> None:
        self.attach_many(handler_id, [event], fn, config, only_if=only_if)

    def attach_many(self, handler_id: str, events: Iterable[Event], fn: Handler,
                    config: Any = None, *, only_if: Callable[[], bool] | None = None) -> None:
        """``only_if``: a cheap check; while it returns false the handler is skipped and
        does not count as listening, so an event nobody else wants is not even built (the
        OpenTelemetry histogram's handler: only while an SDK is installed)."""
        if handler_id in self._handlers:
            raise AlreadyRegistered(f"telemetry handler {handler_id!r} is already attached",
                                    details={"handler_id": handler_id})
        if not callable(fn):
            raise InvalidArgumentsError(f"telemetry handler must be callable, got {fn!r}")
        if only_if is not None and not callable(only_if):
            raise InvalidArgumentsError(
                f"only_if must be a callable or None, got {only_if!r}",
                details={"field": "only_if", "value": repr(only_if)})
        checked = []
        for event in events:
            if not isinstance(event, tuple) or not event or \
                    not all(isinstance(p, str) and p for p in event):
                raise InvalidArgumentsError(
                    f"a telemetry event is a non-empty tuple of strings, got {event!r}")
            checked.append(event)
        entry: Entry = (handler_id, fn, config, only_if)
        self._handlers[handler_id] = (tuple(checked), entry)
        for event in checked:
            self._index.setdefault(event, []).append(entry)
            self._reindex(event)

    def detach(self, handler_id: str) -> bool:
        entry = self._handlers.pop(handler_id, None)
        if entry is None:
            return False
        for event in entry[0]:
            rest = [h for h in self._index.get(event, []) if h[0] != handler_id]
            if rest:
                self._index[event] = rest
            else:
                self._index.pop(event, None)
            self._reindex(event)
        return True

    def handlers(self) -> dict[str, list[Event]]:
        return {hid: list(events) for hid, (events, _) in self._handlers.items()}

    def listening(self, event: Event) -> bool:
        """Whether a handler of ``event`` would run now (on every call's path: a set lookup
        unless only conditional handlers are attached)."""
        if event in self._always:
            return True
        checks = self._checks.get(event)
        if checks is None:
            return False
        for only_if in checks:
            if only_if():
                return True
        return False

    def _reindex(self, event: Event) -> None:
        entries = self._index.get(event, [])
        self._always.discard(event)
        self._checks.pop(event, None)
        if any(only_if is None for _, _, _, only_if in entries):
            self._always.add(event)
        elif entries:
            self._checks[event] = [only_if for _, _, _, only_if in entries
                                   if only_if is not None]

    def execute(self, event: Event, measurements: dict[str, Any],
                metadata: dict[str, Any]) -> None:
        handlers = self._index.get(event)
        if not handlers:
            return
        for handler_id, fn, config, only_if in list(handlers):
            if only_if is not None and not only_if():
                continue
            try:
                fn(event, measurements, metadata, config)
            except Exception:
                self.detach(handler_id)
                log.exception("telemetry handler %r failed on %s and was detached",
                              handler_id, ".".join(event))

    @contextlib.contextmanager
    def span(self, prefix: Event, metadata: dict[str, Any] | None = None) -> Iterator[None]:
        """Emit ``prefix + ("start",)``, then ``("stop",)`` with ``duration`` or
        ``("exception",)`` with ``duration``, ``kind`` and ``reason``."""
        meta = dict(metadata or {})
        t0 = time.perf_counter()
        self.execute(prefix + ("start",), {"system_time": time.time()}, meta)
        try:
            yield
        except BaseException as exc:
            self.execute(prefix + ("exception",), {"duration": time.perf_counter() - t0},
                         {**meta, "kind": type(exc).__name__, "reason": str(exc)})
            raise
        self.execute(prefix + ("stop",), {"duration": time.perf_counter() - t0}, meta)
