"""The synchronous facade, from plain (non-trio) code."""

import psutil
import pytest

import snakepit
from snakepit import errors


def test_client_execute_stream_stats(make_config):
    with snakepit.Client(make_config(size=2)) as sp:
        assert sp.execute("add", {"a": 2, "b": 3}) == 5
        chunks = list(sp.stream("stream_progress", {"steps": 3, "delay_ms": 1}))
        assert [(c.data["step"], c.is_final) for c in chunks] == [(1, False), (2, False),
                                                                   (3, False)]
        with pytest.raises(errors.ToolError):
            sp.execute("error_demo", {"error_type": "runtime"})
        assert sp.stats()["workers"] == 2
        pids = [w["pid"] for w in sp.workers()]
        stream = sp.stream("stream_data", {"count": 100000, "delay": 0.001})
        next(stream)
        stream.close()          # stops the producer and frees the worker
        assert sp.execute("add", {"a": 1, "b": 1}) == 2
    assert not any(psutil.pid_exists(p) for p in pids)
    with pytest.raises(errors.ShuttingDown):
        sp.execute("ping")


def test_client_start_failure_raises(make_config):
    with pytest.raises(errors.WorkerStartError):
        with snakepit.Client(make_config(size=1, adapter="no_such_module:Adapter")):
            pass


def test_run_as_script(make_config):
    seen = []

    def job(client):
        seen.extend(w["pid"] for w in client.workers())
        return client.execute("add", {"a": 20, "b": 22})

    assert snakepit.run_as_script(job, make_config(size=1)) == 42
    assert seen and not any(psutil.pid_exists(p) for p in seen)

    def failing(client):
        raise KeyError("boom")

    with pytest.raises(KeyError):
        snakepit.run_as_script(failing, make_config(size=1))
