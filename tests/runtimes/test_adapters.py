"""The host-side adapter contract."""

import subprocess
import sys
from pathlib import Path

import pytest
import trio

import snakepit
from snakepit.adapters import (CommandAdapter, LaunchOptions, NodeAdapter, PythonAdapter,
                               RubyAdapter)

BRIDGE = Path(__file__).resolve().parents[2] / "snakepit_bridge"
OPTS = LaunchOptions(worker_id="p-1", host_address="127.0.0.1:9", ready_fd=7,
                     max_concurrency=4, dependent=False)


def test_commands_carry_the_worker_flags():
    py = PythonAdapter("pkg.mod:Cls").command(OPTS)
    assert py[:5] == [sys.executable, "-m", "snakepit_bridge", "--adapter", "pkg.mod:Cls"]
    node = NodeAdapter(script=str(BRIDGE / "node" / "showcase.js")).command(OPTS)
    assert node[1].endswith("node/worker.js") and node[2:4] == ["--script", node[3]]
    ruby = RubyAdapter(script=str(BRIDGE / "ruby" / "showcase.rb")).command(OPTS)
    assert ruby[1].endswith("ruby/worker.rb")
    cmd = CommandAdapter(argv=["/bin/worker", "--x"]).command(OPTS)
    for argv in (py, node, ruby, cmd):
        for flag, value in [("--worker-id", "p-1"), ("--ready-fd", "7"),
                            ("--max-concurrency", "4"), ("--host-address", "127.0.0.1:9")]:
            assert argv[argv.index(flag) + 1] == value
        assert "--no-dependent" in argv
        assert not any("secret" in a.lower() for a in argv)   # never on a command line


def test_bad_adapter_values():
    with pytest.raises(snakepit.ConfigError, match="module.path:ClassName"):
        PythonAdapter("not a spec")
    with pytest.raises(snakepit.ConfigError, match="does not exist"):
        NodeAdapter(script="/no/such/tools.js")
    with pytest.raises(snakepit.ConfigError, match="does not exist"):
        RubyAdapter(script="/no/such/tools.rb")
    with pytest.raises(snakepit.ConfigError, match="argv"):
        CommandAdapter(argv="just a string")
    with pytest.raises(snakepit.ConfigError, match="argv"):
        CommandAdapter(argv=[])


def test_checks_and_missing_runtime(tmp_path):
    assert PythonAdapter("a.b:C").check().ok
    node = NodeAdapter(script=str(BRIDGE / "node" / "showcase.js"), node="no-such-node")
    assert not node.check().ok
    with pytest.raises(snakepit.ConfigError, match="not installed"):
        trio.run(node.prepare, str(tmp_path))
    ruby = RubyAdapter(script=str(BRIDGE / "ruby" / "showcase.rb"), ruby="no-such-ruby")
    with pytest.raises(snakepit.ConfigError, match="not installed"):
        trio.run(ruby.prepare, str(tmp_path))


def test_setup_node_cli(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakepit", "setup", "node", "--state-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.glob("node/*/node_modules/@grpc/grpc-js"))


async def test_a_node_pool_declared_in_toml_runs(tmp_path):
    from runtimes_support import make_adapter

    deps = make_adapter("node").deps_dir   # skips without node; shares the test npm install
    (tmp_path / "tools.js").write_text(
        "module.exports = { tools: { add: async ({a, b}) => a + b } };\n")
    path = tmp_path / "snakepit.toml"
    path.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[[pools]]
name = "js"
size = 1
[pools.adapter]
kind = "node"
script = "tools.js"
deps_dir = "{deps}"
""")
    async with snakepit.start(snakepit.Config.from_file(path)) as app:
        assert await app.execute("add", {"a": 2, "b": 3}, pool="js") == 5


def test_first_node_use_says_what_it_is_doing(tmp_path, caplog):
    from snakepit.adapters import install_node_deps

    npm = tmp_path / "npm"   # stands in for npm: records its arguments, succeeds
    npm.write_text("#!/bin/sh\necho \"$@\" > npm-args\nmkdir -p node_modules\n")
    npm.chmod(0o755)
    caplog.set_level("INFO", logger="snakepit")
    modules = install_node_deps(tmp_path / "state", npm=str(npm))
    said = [r.getMessage() for r in caplog.records]
    assert any("installing its npm dependencies into" in m for m in said), said
    assert any("installed in" in m for m in said)
    assert (modules.parent / "npm-args").read_text().startswith("ci ")
    caplog.clear()
    install_node_deps(tmp_path / "state", npm=str(npm))   # done once: nothing more to say
    assert caplog.records == []
