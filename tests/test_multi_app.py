"""Several applications with the default config run side by side (one process or several);
each run owns its records, and the CLI lists and picks among the running apps."""

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import trio

import snakepit
from snakepit import admin
from snakepit.admin import running_apps
from snakepit.cli.common import pick
from snakepit.errors import SnakepitError

# The default config except for the pool size (one worker each: the machine is small).
HOST = """
import json, trio, snakepit
async def main():
    async with snakepit.start(snakepit.Config(pools=[snakepit.PoolConfig(size=1)])) as app:
        print(json.dumps({"run": app._host.run_id,
                          "workers": [w["pid"] for w in app.workers()]}), flush=True)
        await trio.sleep(600)
trio.run(main)
"""


def default_state(tmp_path, monkeypatch=None):
    """The default state dir, redirected into tmp_path the way a user's XDG_STATE_HOME is."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg")}
    if monkeypatch is not None:
        monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    return env, tmp_path / "xdg" / "snakepit"


async def test_two_default_apps_in_one_process(tmp_path, monkeypatch):
    _, state = default_state(tmp_path, monkeypatch)
    config = snakepit.Config(pools=[snakepit.PoolConfig(size=1)])
    assert config.instance_name == "default" and config.state_dir is None
    async with snakepit.start(config) as one, snakepit.start(config) as two:
        assert await one.execute("add", {"a": 1, "b": 2}) == 3
        assert await two.execute("add", {"a": 2, "b": 2}) == 4
        apps = await trio.to_thread.run_sync(running_apps, state)
        assert {a["run_id"] for a in apps} == {one._host.run_id, two._host.run_id}
        # each snapshot counts its own run's processes only
        assert [a["processes"]["tracked"] for a in apps] == [1, 1]
    async with snakepit.start(config) as three:   # the sweep at start spares nothing live
        assert await three.execute("ping") is not None
    assert await trio.to_thread.run_sync(running_apps, state) == []


def test_two_default_clients_in_one_process(tmp_path, monkeypatch):
    default_state(tmp_path, monkeypatch)
    config = snakepit.Config(pools=[snakepit.PoolConfig(size=1)])
    with snakepit.Client(config) as one, snakepit.Client(config) as two:
        assert one.execute("add", {"a": 1, "b": 1}) == 2
        assert two.execute("add", {"a": 2, "b": 1}) == 3
        assert one.workers()[0]["pid"] != two.workers()[0]["pid"]


def cli(*args, env, check=True):
    proc = subprocess.run([sys.executable, "-m", "snakepit", *args], capture_output=True,
                          text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_two_default_apps_in_two_processes(tmp_path):
    env, _ = default_state(tmp_path)
    hosts = [subprocess.Popen([sys.executable, "-c", HOST], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    frozen = []
    try:
        first, second = (json.loads(h.stdout.readline()) for h in hosts)
        # Without a terminal, several running apps are listed and the command fails.
        many = cli("inspect", env=env, check=False)
        assert many.returncode == 1
        assert first["run"] in many.stderr and second["run"] in many.stderr
        assert "--run" in many.stderr and "--all" in many.stderr
        both = json.loads(cli("inspect", "--all", "--format", "json", env=env).stdout)
        assert sorted(s["pid"] for s in both) == sorted(h.pid for h in hosts)
        one = json.loads(cli("inspect", "--run", second["run"][:6], "--format", "json",
                             env=env).stdout)
        assert one["run_id"] == second["run"] and one["pid"] == hosts[1].pid
        assert "default-1" in cli("top", "--all", "--iterations", "1", "--interval", "0.1",
                                  env=env).stdout
        # `snakepit demo` (default config too) runs while they do; its ping reads well.
        demo = cli("demo", "--workers", "1", env=env)
        assert "ping → pong from worker pid" in demo.stdout and "stopped" in demo.stdout
        # The first host dies with -9; its worker is frozen so it cannot notice and exit.
        for pid in first["workers"]:
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
        hosts[0].kill()
        hosts[0].wait()
        dry = cli("cleanup", "--dry-run", env=env).stdout
        assert f"would kill default-1 (pid {first['workers'][0]})" in dry
        assert f"left alone running app: run {second['run']}" in dry
        cli("cleanup", env=env)
        deadline = time.monotonic() + 10
        while alive(first["workers"][0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(first["workers"][0]), "cleanup left the dead run's worker"
        assert all(alive(pid) for pid in second["workers"]), "cleanup touched a live run"
        again = json.loads(cli("inspect", "--format", "json", env=env).stdout)
        assert again["run_id"] == second["run"] and again["processes"]["live"] == 1
    finally:
        for pid in frozen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for host in hosts:
            host.kill()
            host.wait()
            host.stdout.close()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_cli_asks_which_app(tmp_path, monkeypatch):
    apps = [{"run_id": f"run{i}", "instance": "default", "pid": 100 + i, "uptime": 5.0,
             "pools": [{"name": "default", "size": 1}], "socket": f"/x/run{i}.sock"}
            for i in (1, 2)]
    monkeypatch.setattr(admin, "running_apps", lambda state_dir, instance=None: list(apps))
    args = argparse.Namespace(config=None, instance=None, state_dir=str(tmp_path), run=None,
                              all=False)
    out = Terminal()
    assert pick(args, stdin=Terminal("7\n2\n"), out=out) == [apps[1]]   # 7: asked again
    assert "[1] run run1" in out.getvalue() and out.getvalue().count("which one?") == 2
    assert pick(args, stdin=Terminal("a\n"), out=Terminal()) == apps
    with pytest.raises(KeyboardInterrupt):                      # an empty answer gives up
        pick(args, stdin=Terminal(""), out=Terminal())
    with pytest.raises(SnakepitError, match="2 snakepit apps are running"):
        pick(args, stdin=io.StringIO("1\n"), out=io.StringIO())   # no terminal: no question
    args.run = "run2"
    assert pick(args, stdin=io.StringIO(), out=io.StringIO()) == [apps[1]]
