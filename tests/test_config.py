"""Configuration: defaults, validation messages naming field/value/allowed, TOML files."""

import os

import pytest

import snakepit
import snakepit.adapters
from snakepit import ConfigError


def test_defaults_match_design():
    p = snakepit.PoolConfig()
    assert (p.name, p.profile, p.threads_per_worker, p.max_queue_size) == \
        ("default", "process", 1, 1000)
    assert (p.queue_timeout, p.request_timeout, p.stream_timeout, p.startup_timeout) == \
        (10.0, 300.0, 900.0, 30.0)
    assert (p.startup_batch_size, p.affinity, p.shutdown_grace, p.transport, p.preload) == \
        (8, "hint", 6.0, "auto", False)
    assert p.resolved_transport == "pipe"   # Python workers: pipe frames (ADR 0003)
    assert snakepit.PoolConfig(adapter=snakepit.adapters.CommandAdapter(
        argv=["./w"])).resolved_transport == "grpc"
    assert p.size == 2 * (os.cpu_count() or 1) and p.required is True
    assert p.heartbeat == snakepit.HeartbeatConfig(interval=2.0, timeout=10.0, max_missed=3,
                                                   dependent=True)
    s = snakepit.SessionConfig()
    assert (s.ttl, s.cleanup_interval, s.max_sessions, s.store) == (3600.0, 60.0, 10_000,
                                                                   "memory")
    c = snakepit.Config()
    assert c.instance_name == "default" and c.log_level == "info"
    assert c.resolved_state_dir().name == "snakepit"


@pytest.mark.parametrize("kw,field", [
    ({"size": 0}, "size"), ({"size": 1.5}, "size"), ({"size": True}, "size"),
    ({"profile": "fiber"}, "profile"), ({"affinity": "sticky"}, "affinity"),
    ({"queue_timeout": 0}, "queue_timeout"), ({"request_timeout": -1}, "request_timeout"),
    ({"max_queue_size": -1}, "max_queue_size"), ({"startup_batch_size": 0},
                                                 "startup_batch_size"),
    ({"worker_ttl": 0}, "worker_ttl"), ({"worker_max_requests": 0}, "worker_max_requests"),
    ({"worker_max_memory_mb": -5}, "worker_max_memory_mb"),
    ({"shutdown_grace": -1}, "shutdown_grace"), ({"adapter": "not a spec"}, "adapter"),
    ({"adapter": 42}, "adapter"), ({"env": {"A": 1}}, "env"), ({"name": "bad name"}, "name"),
    ({"threads_per_worker": 4}, "threads_per_worker"), ({"transport": "carrier-pigeon"},
                                                        "transport"),
    ({"python": ""}, "python"), ({"required": "yes"}, "required"),
    ({"preload": "yes"}, "preload"),
    ({"preload": True, "adapter": snakepit.adapters.CommandAdapter(argv=["./w"])}, "preload"),
])
def test_bad_pool_values_name_the_field(kw, field):
    with pytest.raises(ConfigError) as info:
        snakepit.PoolConfig(**kw)
    assert f"PoolConfig.{field}" in str(info.value)
    assert repr(list(kw.values())[0]) in str(info.value)


def test_cross_field_and_app_level():
    with pytest.raises(ConfigError, match="timeout"):
        snakepit.PoolConfig(heartbeat=snakepit.HeartbeatConfig(interval=5, timeout=1))
    with pytest.raises(ConfigError, match="distinct"):
        snakepit.Config(pools=[snakepit.PoolConfig(), snakepit.PoolConfig()])
    with pytest.raises(ConfigError, match="log_level"):
        snakepit.Config(log_level="loud")
    with pytest.raises(ConfigError, match="store"):
        snakepit.SessionConfig(store="redis")
    assert snakepit.PoolConfig(profile="thread", threads_per_worker=4).capacity_for(None) == 4


def test_from_file(tmp_path):
    path = tmp_path / "snakepit.toml"
    path.write_text("""
instance_name = "web"
log_level = "warning"
[sessions]
ttl = 60.0
store = "sqlite"
[[pools]]
name = "cpu"
size = 2
[pools.heartbeat]
interval = 1.0
timeout = 5.0
[[pools]]
name = "io"
size = 1
profile = "thread"
threads_per_worker = 8
""")
    cfg = snakepit.Config.from_file(path)
    assert [p.name for p in cfg.pools] == ["cpu", "io"]
    assert cfg.pools[0].heartbeat.interval == 1.0 and cfg.sessions.store == "sqlite"
    assert cfg.pool("io").threads_per_worker == 8 and cfg.instance_name == "web"
    path.write_text("[[pools]]\nname = 'x'\nsizee = 3\n")
    with pytest.raises(ConfigError, match="sizee"):
        snakepit.Config.from_file(path)
    path.write_text("not = [valid")
    with pytest.raises(ConfigError, match="TOML"):
        snakepit.Config.from_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        snakepit.Config.from_file(tmp_path / "missing.toml")


NODE_TOOLS = "module.exports = { tools: { add: async ({a, b}) => a + b } };\n"


def test_toml_declares_every_adapter_kind(tmp_path):
    from snakepit.adapters import CommandAdapter, NodeAdapter, PythonAdapter, RubyAdapter

    (tmp_path / "tools.js").write_text(NODE_TOOLS)
    (tmp_path / "tools.rb").write_text("")
    path = tmp_path / "snakepit.toml"
    path.write_text("""
[[pools]]
name = "py"
adapter = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
[[pools]]
name = "py2"
[pools.adapter]
kind = "python"
spec = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
adapter_args = ["--x"]
[[pools]]
name = "js"
[pools.adapter]
kind = "node"
script = "tools.js"
capacity = 8
[[pools]]
name = "rb"
[pools.adapter]
kind = "ruby"
script = "tools.rb"
[[pools]]
name = "go"
[pools.adapter]
kind = "command"
argv = ["./bin/worker", "--flag"]
workdir = "run"
""")
    pools = {p.name: p.adapter for p in snakepit.Config.from_file(path).pools}
    assert pools["py"] == "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
    assert isinstance(pools["py2"], PythonAdapter) and pools["py2"].adapter_args == ("--x",)
    assert pools["js"] == NodeAdapter(script=str(tmp_path / "tools.js"), capacity=8)
    assert pools["rb"] == RubyAdapter(script=str(tmp_path / "tools.rb"))
    assert pools["go"] == CommandAdapter(argv=[str(tmp_path / "bin/worker"), "--flag"],
                                         workdir=str(tmp_path / "run"))


@pytest.mark.parametrize("pool,message", [
    ('adapter = "node:tools.js"', "NodeAdapter(script=...)"),
    ('adapter = "tools.rb:Thing.rb"', "RubyAdapter(script=...)"),
    ('[pools.adapter]\nkind = "java"', "kind must be one of 'python', 'node'"),
    ('[pools.adapter]\nkind = "node"', "(kind 'node') needs script"),
    ('[pools.adapter]\nkind = "node"\nscript = "missing.js"', "does not exist"),
    ('[pools.adapter]\nkind = "ruby"\nscript = "tools.js"\nthreads = 4',
     "unknown key(s) threads for RubyAdapter"),
])
def test_toml_rejects_what_an_adapter_cannot_mean(tmp_path, pool, message):
    (tmp_path / "tools.js").write_text(NODE_TOOLS)
    path = tmp_path / "snakepit.toml"
    path.write_text(f"[[pools]]\nname = \"p\"\n{pool}\n")
    with pytest.raises(snakepit.ConfigError) as info:
        snakepit.Config.from_file(path)
    assert message in str(info.value)
    assert "pools[0].adapter" in str(info.value) or "PoolConfig.adapter" in str(info.value)
