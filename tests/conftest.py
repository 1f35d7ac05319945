"""Test-wide fixtures: every test is checked for leftover child processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

# Workers are started by the host with this already set (docs/architecture.md); tests that start
# grpc in-process must not fork with fork handlers armed either.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

LEAK_GRACE = 10.0  # seconds a test's processes get to finish dying after it ends


def _live_children() -> list[psutil.Process]:
    me = psutil.Process()
    out = []
    for child in me.children(recursive=True):
        try:
            # A zombie child is a process nobody reaped: that is a leak too.
            child.status()
            out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(autouse=True)
def no_leaked_processes(request: pytest.FixtureRequest):
    before = {p.pid for p in _live_children()}
    yield
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        leaked = [p for p in _live_children() if p.pid not in before]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling with a deadline: the processes are not ours to wait on
    if leaked:
        desc = []
        for p in leaked:
            try:
                desc.append(f"{p.pid} {p.status()} {' '.join(p.cmdline())[:200]}")
            except psutil.Error:
                desc.append(f"{p.pid} (gone)")
            try:
                p.kill()
            except psutil.Error:
                pass
        pytest.fail("test left processes running:\n  " + "\n  ".join(desc), pytrace=False)


SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
TEST_ADAPTERS = Path(__file__).resolve().parent / "pool"   # pool_adapters.py lives there


@pytest.fixture
def transport():
    """The pool transport: what users get ("auto": pipe for Python workers). Behaviour is tested
    once, on it; what each transport must do is tests/transport/test_conformance.py, and tests
    marked ``both_transports`` (transport-specific machinery) run over each."""
    return "auto"


def pytest_generate_tests(metafunc):
    chosen = any(m.args and m.args[0] == "transport"
                 for m in metafunc.definition.iter_markers("parametrize"))
    if "transport" in metafunc.fixturenames and not chosen and \
            metafunc.definition.get_closest_marker("both_transports"):
        metafunc.parametrize("transport", ["grpc", "pipe"])


@pytest.fixture
def make_config(tmp_path, transport):
    """``make_config(size=2, **pool_kw)`` → a Config with one pool, state in tmp_path; the
    workers can import the test adapters (``pool_adapters:...``)."""
    import snakepit

    def make(size=2, *, pools=None, sessions=None, **pool_kw):
        pool_kw.setdefault("adapter", SHOWCASE)
        pool_kw.setdefault("startup_timeout", 30.0)
        pool_kw.setdefault("shutdown_grace", 1.0)   # tests of the grace itself pass their own
        if isinstance(pool_kw["adapter"], str):   # Python workers speak both transports
            pool_kw.setdefault("transport", transport)
        env = dict(pool_kw.pop("env", {}))
        env.setdefault("PYTHONPATH", str(TEST_ADAPTERS))
        if pools is None:
            pools = [snakepit.PoolConfig(name=pool_kw.pop("name", "default"), size=size,
                                         env=env, **pool_kw)]
        kw = {"state_dir": str(tmp_path / "state")}
        if sessions is not None:
            kw["sessions"] = sessions
        return snakepit.Config(pools=pools, **kw)

    return make


@pytest.fixture
def reads(monkeypatch):
    """The names of segments the host mapped (a spy around the real ``take``)."""
    from snakepit_bridge import shm
    seen = []
    real = shm.take

    def spy(name, size):
        seen.append(name)
        return real(name, size)
    monkeypatch.setattr(shm, "take", spy)
    return seen
