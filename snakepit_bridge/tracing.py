"""Optional OpenTelemetry tracing in the worker: a span per request, child of the host's
span (W3C trace context travels in ``ExecuteRequest.metadata``).

    with tracing.span("snakepit.worker.execute", request):
        ...

Tracing is on for a request when the host sent trace context (the host traces) or when the
worker's own code has imported OpenTelemetry (it configures an SDK). Otherwise the span is a
no-op and OpenTelemetry is not imported at all: a worker that nobody traces does not pay for
its import. Spans are recorded only if the worker configures an SDK; without
``opentelemetry-api`` installed every span is a no-op.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator


def _opentelemetry(request: Any) -> Any:
    """The ``opentelemetry`` package if this request is to be traced, else None."""
    if "opentelemetry.trace" not in sys.modules and not request.metadata:
        return None   # only trace context travels in metadata: nobody traces this request
    try:
        import opentelemetry.propagate
        import opentelemetry.trace
    except ImportError:  # pragma: no cover - the bridge does not require OpenTelemetry
        return None
    return opentelemetry


_UNTRACED: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


def span(name: str, request: Any) -> contextlib.AbstractContextManager[None]:
    """The request's span; a shared no-op when nobody traces it (most calls: no generator
    per call)."""
    otel = _opentelemetry(request)
    return _UNTRACED if otel is None else _traced(otel, name, request)


@contextlib.contextmanager
def _traced(otel: Any, name: str, request: Any) -> Iterator[None]:
    parent = otel.propagate.extract(dict(request.metadata))
    tracer = otel.trace.get_tracer("snakepit_bridge")
    with tracer.start_as_current_span(name, context=parent, attributes={
            "snakepit.tool": request.tool, "snakepit.correlation_id": request.correlation_id}):
        yield
