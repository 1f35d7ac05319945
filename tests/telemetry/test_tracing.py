"""OpenTelemetry spans: the worker's span is a child of the host's, across the process."""

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import snakepit


EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def otel_sdk():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


async def test_span_parentage_across_processes(make_config):
    async with snakepit.start(make_config(size=1, adapter="pool_adapters:TracedAdapter")) as app:
        EXPORTER.clear()
        assert await app.execute("work", correlation_id="trace-me") == "done"
        host = [s for s in EXPORTER.get_finished_spans() if s.name == "snakepit.execute"]
        assert len(host) == 1
        assert host[0].attributes["snakepit.tool"] == "work"
        assert host[0].attributes["snakepit.correlation_id"] == "trace-me"
        worker_spans = [s for s in await app.execute("spans")
                        if s["name"] == "snakepit.worker.execute"]
    first = worker_spans[0]
    assert first["trace_id"] == f"{host[0].context.trace_id:032x}"
    assert first["parent"] == f"{host[0].context.span_id:016x}"
