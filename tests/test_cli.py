"""The CLI as an operator uses it, against a live application in another process."""

import json
import os
import subprocess
import sys

import pytest

HOST = """
import sys, trio, snakepit
cfg = snakepit.Config(state_dir=sys.argv[1], pools=[snakepit.PoolConfig(name="default", size=2)])
async def main():
    async with snakepit.start(cfg) as app:
        for i in range(5):
            await app.execute("add", {"a": i, "b": 1})
        print("ready", flush=True)
        await trio.sleep(600)
trio.run(main)
"""


narrow = {**os.environ, "COLUMNS": "80"}


def cli(*args, check=True, env=None):
    proc = subprocess.run([sys.executable, "-m", "snakepit", *args], capture_output=True,
                          text=True, timeout=120, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("command", ["demo", "inspect", "top", "cleanup", "diagnose", "setup"])
def test_every_command_has_help(command):
    assert "usage" in cli(command, "--help").stdout
    from snakepit.cli import _parser
    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    bare = [a.option_strings for a in sub._actions if a.option_strings and not a.help]
    assert bare == [], f"{command}: options without help"


def test_inspect_cleanup_diagnose_against_a_live_app(tmp_path):
    state = tmp_path / "state"
    host = subprocess.Popen([sys.executable, "-c", HOST, str(state)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert host.stdout.readline().strip() == "ready"
        snap = json.loads(cli("inspect", "--state-dir", str(state), "--format", "json",
                              "--recommendations").stdout)
        assert snap["pid"] == host.pid and snap["instance"] == "default"
        pool = snap["pools"][0]
        assert pool["stats"]["requests"] == 5 and pool["stats"]["workers"] == 2
        assert [w["state"] for w in pool["workers"]] == ["ready", "ready"]
        assert all(w["rss"] > 0 and w["pid"] for w in pool["workers"])
        assert snap["processes"] == {"tracked": 2, "live": 2, "stale": 0}
        assert snap["recommendations"]
        table = cli("inspect", "--state-dir", str(state), "--detailed", env=narrow).stdout
        assert "default-1" in table and "default-2" in table
        assert "…" not in table and max(map(len, table.splitlines())) <= 80
        assert " default " in table and "requests" in table   # names and headers whole
        # The reader goes away before the first byte (`... | head -1` on a big snapshot).
        reader_gone = subprocess.Popen(
            [sys.executable, "-m", "snakepit", "inspect", "--state-dir", str(state),
             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        reader_gone.stdout.close()
        assert reader_gone.wait(60) == 0
        assert reader_gone.stderr.read() == b""
        reader_gone.stderr.close()
        assert "default-1" in cli("top", "--state-dir", str(state), "--iterations", "1",
                                  "--interval", "0.1").stdout
        dry = cli("cleanup", "--dry-run", "--state-dir", str(state)).stdout
        assert "0 dead run" in dry        # the live app is not a dead run
        report = json.loads(cli("diagnose", "--state-dir", str(state), "--format",
                                "json").stdout)
        assert report["config"].startswith(f"the running app (run {snap['run_id']}")
        assert {r["check"] for r in report["checks"]} >= {"python", "bridge", "state dir"}
        assert all(r["status"] != "fail" for r in report["checks"])
    finally:
        host.kill()
        host.wait()
        host.stdout.close()
    missing = cli("inspect", "--state-dir", str(tmp_path / "none"), check=False)
    assert missing.returncode == 1 and "no running snakepit app" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1   # a one-line reason
    bad = cli("inspect", "--config", str(tmp_path / "nope.toml"), check=False)
    assert bad.returncode == 1 and "cannot read config file" in bad.stderr


def test_diagnose_fails_for_a_missing_runtime(tmp_path):
    cfg = tmp_path / "snakepit.toml"
    cfg.write_text('[[pools]]\nname = "p"\nsize = 1\npython = "/no/such/python"\n')
    proc = cli("diagnose", "--config", str(cfg), "--state-dir", str(tmp_path), "--format",
               "json", check=False)
    assert proc.returncode == 1
    rows = {r["check"]: r for r in json.loads(proc.stdout)["checks"]}
    assert rows["pool p runtime"]["status"] == "fail"
