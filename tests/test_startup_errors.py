"""A start that fails raises a SnakepitError naming the child, never an otp StartError, and a
worker's start-up traceback is told once (in the error), not again in the log."""

import logging
import socket
import sys

import pytest

import snakepit
from snakepit import otp
from snakepit.errors import ConfigError, SnakepitError, WorkerStartError


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_metrics_port_in_use_is_a_config_error(make_config, taken_port):
    config = snakepit.Config(pools=make_config(size=1).pools, state_dir=make_config().state_dir,
                             metrics_address=f"127.0.0.1:{taken_port}")
    with pytest.raises(ConfigError) as info:
        async with snakepit.start(config):
            pytest.fail("started with the metrics port taken")
    assert not isinstance(info.value, otp.StartError)
    assert info.value.details["child"] == "application/metrics"
    assert "Address already in use" in str(info.value)


def test_client_raises_the_same_config_error(make_config, taken_port):
    config = snakepit.Config(pools=make_config(size=1).pools, state_dir=make_config().state_dir,
                             metrics_address=f"127.0.0.1:{taken_port}")
    with pytest.raises(ConfigError) as info:
        with snakepit.Client(config):
            pytest.fail("started with the metrics port taken")
    assert info.value.details["child"] == "application/metrics"


async def test_metrics_without_prometheus_client(make_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)   # import fails
    config = snakepit.Config(pools=make_config(size=1).pools, state_dir=make_config().state_dir,
                             metrics_address="127.0.0.1:0")
    with pytest.raises(ConfigError, match="prometheus-client") as info:
        async with snakepit.start(config):
            pytest.fail("started without prometheus-client")
    assert info.value.details["child"] == "application/metrics"


def test_a_child_error_keeps_its_own_type():
    from snakepit.application import startup_error

    inner = WorkerStartError("no")
    nested = otp.StartError("pools", otp.StartError("gpu", inner, "pools"), "application")
    assert startup_error(nested) is inner and inner.details["child"] == "application/pools/gpu"
    other = startup_error(otp.StartError("x", RuntimeError("boom"), "application"))
    assert isinstance(other, SnakepitError) and "RuntimeError: boom" in str(other)


async def test_bad_adapter_traceback_is_told_once(make_config, caplog, tmp_path):
    (tmp_path / "broken_tools.py").write_text("raise RuntimeError('broken on import')\n")
    caplog.set_level(logging.INFO, logger="snakepit")
    with pytest.raises(WorkerStartError) as info:
        async with snakepit.start(make_config(size=2, adapter="broken_tools:Thing",
                                              env={"PYTHONPATH": str(tmp_path)})):
            pytest.fail("started with an adapter module that fails to import")
    message = str(info.value)
    assert message.count("Traceback (most recent call last)") == 1
    assert "RuntimeError: broken on import" in message
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "broken on import" not in logged and "Traceback" not in logged, logged
