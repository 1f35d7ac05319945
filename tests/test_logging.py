"""Log levels, redaction, and worker output that never stalls a worker."""

import logging
import time

import pytest
import trio

import snakepit
from snakepit.logs import redact, summarize

SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"


@pytest.mark.parametrize("text,hidden", [
    ("Authorization: Bearer abcdef123456", "abcdef123456"),
    ("connecting to postgres://app:hunter2@db:5432/x", "hunter2"),
    ("api_key=AKIA1234567890 other", "AKIA1234567890"),
    ('{"password": "s3cr3t!"}', "s3cr3t!"),
    ("using sk-proj-abcdefghijklmnop", "abcdefghijklmnop"),
])
def test_redact(text, hidden):
    out = redact(text)
    assert hidden not in out and "***" in out


def test_summarize_never_shows_content():
    assert summarize({"secret": "x" * 5000}).startswith("dict(1 keys, ~4 KB")
    assert summarize(b"\x00" * 10) == "bytes(10, ~10 B)"
    assert "hunter2" not in summarize(["hunter2"])


def _config(tmp_path, level, size=1):
    return snakepit.Config(state_dir=str(tmp_path), log_level=level, pools=[
        snakepit.PoolConfig(name="default", size=size, adapter=SHOWCASE)])


async def test_worker_output_redacted_and_levels(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="snakepit")
    async with snakepit.start(_config(tmp_path, "info")) as app:
        app.tools.register("leak", lambda: None)
        await app.execute("echo", {"x": 1})
    # the worker logs its own start-up at info; the level lets it through
    assert any(r.name == "snakepit.worker" for r in caplog.records)
    caplog.clear()
    async with snakepit.start(_config(tmp_path, "warning")) as app:
        await app.execute("echo", {"x": 1})
    assert not [r for r in caplog.records if r.levelno < logging.WARNING
                and r.name.startswith("snakepit")]


async def test_flooding_worker_does_not_stall(tmp_path, caplog):
    async with snakepit.start(_config(tmp_path, "error")) as app:
        t0 = time.monotonic()
        out = await app.execute("cpu_burn", {"ms": 1})          # warm
        assert out["iterations"] > 0
        with trio.fail_after(20):
            await app.execute("flood_stderr", {"lines": 50_000})   # 5 MB >> a pipe buffer
        assert time.monotonic() - t0 < 20
        assert await app.execute("add", {"a": 1, "b": 1}) == 2


async def test_correlation_id_in_worker_log_lines(tmp_path, caplog):
    import pathlib
    caplog.set_level(logging.INFO, logger="snakepit")
    pool_dir = str(pathlib.Path(__file__).parent / "pool")
    cfg = snakepit.Config(state_dir=str(tmp_path), pools=[snakepit.PoolConfig(
        name="default", size=1, adapter="pool_adapters:LoggingAdapter",
        env={"PYTHONPATH": pool_dir})])
    async with snakepit.start(cfg) as app:
        await app.execute("log_something", correlation_id="corr-42")
        with trio.fail_after(10):
            while not any("inside the tool" in r.getMessage() for r in caplog.records):
                await trio.sleep(0.02)
    line = next(r.getMessage() for r in caplog.records if "inside the tool" in r.getMessage())
    assert "correlation_id=corr-42" in line and "[default-1]" in line
