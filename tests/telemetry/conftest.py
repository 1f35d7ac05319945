from pathlib import Path

import pytest

import snakepit

SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
HERE = Path(__file__).resolve().parents[1] / "pool"


@pytest.fixture
def make_config(tmp_path):
    """``make_config(size=2, **pool_kw)`` → a Config with one pool, state in tmp_path."""

    def make(size=2, *, pools=None, sessions=None, **pool_kw):
        pool_kw.setdefault("adapter", SHOWCASE)
        pool_kw.setdefault("startup_timeout", 30.0)
        env = dict(pool_kw.pop("env", {}))
        env.setdefault("PYTHONPATH", str(HERE))
        if pools is None:
            pools = [snakepit.PoolConfig(name=pool_kw.pop("name", "default"), size=size,
                                         env=env, **pool_kw)]
        kw = {"state_dir": str(tmp_path / "state")}
        if sessions is not None:
            kw["sessions"] = sessions
        return snakepit.Config(pools=pools, **kw)

    return make
