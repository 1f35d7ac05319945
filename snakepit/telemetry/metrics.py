"""Metrics: OpenTelemetry instruments (no-ops until an SDK is installed) and optional
Prometheus exposition (``Config(metrics_address="127.0.0.1:9568")``, needs
``pip install snakepit[prometheus]``).

Both read the same sources: request durations from the ``request execute stop/exception``
events, and the pools' live counters (queue depth, busy and available workers, restarts)
at collection time.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

import trio

from opentelemetry.metrics import _internal as _otel_api

from snakepit.errors import ConfigError

log = logging.getLogger("snakepit.telemetry.metrics")

DURATION_EVENTS = [("snakepit", "request", "execute", "stop"),
                   ("snakepit", "request", "execute", "exception")]
GAUGES = {"queued": "requests waiting for a worker", "busy": "workers with a request in flight",
          "available": "free worker slots", "workers": "live workers",
          "restarts": "worker restarts since the pool started", "errors": "failed calls"}


def pool_stats(host: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for cfg in host.config.pools:
        pool = host.registry.whereis(("pool", cfg.name))
        if pool is not None:
            yield cfg.name, pool.stats()


class _Otel:
    """The OpenTelemetry instruments, created once per process (an SDK keeps the first
    instrument of a name); they read every running application's pools."""

    def __init__(self) -> None:
        from opentelemetry import metrics

        self.hosts: dict[str, Any] = {}
        meter = metrics.get_meter("snakepit")
        self.histogram = meter.create_histogram("snakepit.request.duration", unit="s",
                                                description="duration of execute calls")
        for name, description in GAUGES.items():
            meter.create_observable_gauge(f"snakepit.pool.{name}", description=description,
                                          callbacks=[self._observer(name)])

    def _observer(self, key: str) -> Any:
        from opentelemetry import metrics

        def callback(options: Any) -> Iterator[Any]:
            for host in list(self.hosts.values()):
                for pool, stats in pool_stats(host):
                    yield metrics.Observation(stats[key], {"pool": pool})
        return callback

    def record(self, event: Any, measurements: Any, metadata: Any, config: Any) -> None:
        self.histogram.record(measurements["duration"], {
            "pool": metadata.get("pool", ""), "tool": metadata.get("tool", ""),
            "success": bool(metadata.get("success"))})


_otel: list[_Otel] = []   # the process's instruments, created on first use


def install_otel(host: Any) -> str:
    """Report ``host``'s pools through OpenTelemetry (no-ops until an SDK is installed);
    returns the handler id to detach (which also forgets the host)."""
    if not _otel:
        _otel.append(_Otel())
    otel = _otel[0]
    otel.hosts[host.run_id] = host
    handler_id = f"snakepit-otel-{host.run_id}"
    host.telemetry.attach_many(handler_id, DURATION_EVENTS, otel.record,
                               only_if=_meter_provider_set)
    return handler_id


def _meter_provider_set() -> bool:
    """Whether an OpenTelemetry SDK's MeterProvider is installed or configured by the
    environment (before that, the histogram records into a no-op: the calls need not build
    the event it reads). The API keeps the installed provider in ``_METER_PROVIDER``."""
    return getattr(_otel_api, "_METER_PROVIDER", True) is not None or _PROVIDER_FROM_ENV


_PROVIDER_FROM_ENV = "OTEL_PYTHON_METER_PROVIDER" in os.environ


def uninstall_otel(host: Any, handler_id: str) -> None:
    host.telemetry.detach(handler_id)
    if _otel:
        _otel[0].hosts.pop(host.run_id, None)


async def serve_prometheus(host: Any, address: str, *,
                           task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    try:
        from prometheus_client import CollectorRegistry, Histogram, start_http_server
        from prometheus_client.core import GaugeMetricFamily
    except ImportError:
        raise ConfigError("Config.metrics_address needs prometheus-client: "
                          "pip install 'snakepit[prometheus]'") from None
    hostname, _, port = address.rpartition(":")
    if not hostname or not port.isdigit():
        raise ConfigError(f"Config.metrics_address must be 'host:port', got {address!r}")
    registry = CollectorRegistry()
    duration = Histogram("snakepit_request_duration_seconds", "duration of execute calls",
                         ["pool", "tool", "success"], registry=registry)

    class PoolCollector:
        def collect(self) -> Iterator[Any]:
            for name, description in GAUGES.items():
                family = GaugeMetricFamily(f"snakepit_pool_{name}", description,
                                           labels=["pool"])
                for pool, stats in pool_stats(host):
                    family.add_metric([pool], stats[name])
                yield family

    registry.register(PoolCollector())  # type: ignore[arg-type]

    def on_request(event: Any, measurements: Any, metadata: Any, config: Any) -> None:
        duration.labels(metadata.get("pool", ""), metadata.get("tool", ""),
                        str(bool(metadata.get("success"))).lower()).observe(
            measurements["duration"])

    handler_id = f"snakepit-prometheus-{host.run_id}"
    host.telemetry.attach_many(handler_id, DURATION_EVENTS, on_request)
    server, thread = start_http_server(int(port), addr=hostname, registry=registry)
    try:
        task_status.started(f"http://{hostname}:{server.server_port}/metrics")
        await trio.sleep_forever()
    finally:
        host.telemetry.detach(handler_id)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.shutdown)
            server.server_close()
