"""Optional OpenTelemetry tracing in the worker: a span per request, child of the host's
span (W3C trace context travels in ``ExecuteRequest.metadata``). A no-op without
``opentelemetry-api``; spans are recorded only if the worker configures an SDK."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

try:
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the bridge does not require OpenTelemetry
    propagate = trace = None  # type: ignore[assignment]


@contextlib.contextmanager
def span(name: str, request: Any) -> Iterator[None]:
    if trace is None:
        yield
        return
    parent = propagate.extract(dict(request.metadata))
    tracer = trace.get_tracer("snakepit_bridge")
    with tracer.start_as_current_span(name, context=parent, attributes={
            "snakepit.tool": request.tool, "snakepit.correlation_id": request.correlation_id}):
        yield
