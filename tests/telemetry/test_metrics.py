"""OpenTelemetry metrics through the API (checked with the SDK's in-memory reader) and the
Prometheus endpoint."""

import socket
import urllib.request

import pytest
import trio
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import snakepit

READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def otel_sdk():
    # The global MeterProvider can be set once per process: this module owns it.
    otel_metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _names(data):
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = m
    return out


async def test_otel_metrics(make_config):
    async with snakepit.start(make_config(size=2)) as app:
        for i in range(5):
            await app.execute("add", {"a": i, "b": 1})
        found = _names(READER.get_metrics_data())
    hist = found["snakepit.request.duration"].data.data_points
    assert sum(p.count for p in hist) >= 5
    workers = found["snakepit.pool.workers"].data.data_points
    assert any(p.value == 2 and p.attributes["pool"] == "default" for p in workers)
    assert {"snakepit.pool.queued", "snakepit.pool.busy", "snakepit.pool.available",
            "snakepit.pool.restarts"} <= set(found)


async def test_prometheus_scrape(make_config, tmp_path):
    port = free_port()
    config = make_config(size=1)
    config = snakepit.Config(pools=config.pools, state_dir=config.state_dir,
                             metrics_address=f"127.0.0.1:{port}")
    async with snakepit.start(config) as app:
        for _ in range(3):
            await app.execute("ping")
        body = await trio.to_thread.run_sync(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
            .read().decode())
    assert 'snakepit_pool_workers{pool="default"} 1.0' in body
    assert 'snakepit_request_duration_seconds_count{pool="default",success="true",tool="ping"} 3.0' \
        in body
    with pytest.raises(OSError):      # the endpoint stops with the application
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
