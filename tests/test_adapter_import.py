"""A Python adapter is imported where the host imports it, whatever the current directory;
a module the worker cannot find is reported with where it looked."""

import subprocess
import sys

import pytest

import snakepit
from snakepit.adapters.python import host_import_root
from snakepit.errors import WorkerStartError

TOOLS = """
from snakepit_bridge import BaseAdapter, tool

class MyAdapter(BaseAdapter):
    @tool
    def shout(self, text: str) -> str:
        return text.upper() + "!"
"""

SCRIPT = """
import sys, trio, snakepit
cfg = snakepit.Config(state_dir=sys.argv[1], pools=[snakepit.PoolConfig(
    size=1, adapter="mytools:MyAdapter", transport=sys.argv[2], preload=sys.argv[3] == "1")])
async def main():
    async with snakepit.start(cfg) as app:
        print(await app.execute("shout", {"text": "hi"}))
trio.run(main)
"""


@pytest.mark.parametrize("transport,preload", [("grpc", "0"), ("pipe", "1")])
def test_adapter_beside_the_script_works_from_another_cwd(tmp_path, transport, preload):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "mytools.py").write_text(TOOLS)
    (project / "run.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(project / "run.py"), str(tmp_path / "state"),
                           transport, preload], cwd=elsewhere, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HI!"


def test_installed_modules_are_not_passed_on(tmp_path, monkeypatch):
    (tmp_path / "mytools.py").write_text(TOOLS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert host_import_root("mytools") == str(tmp_path.resolve())
    assert host_import_root("json") is None          # the stdlib is the worker's own
    assert host_import_root("trio") is None          # so are site-packages
    assert host_import_root("no_such_module_here") is None


async def test_missing_adapter_says_where_it_looked(make_config):
    with pytest.raises(WorkerStartError) as info:
        async with snakepit.start(make_config(size=1, adapter="no_such_tools:Thing")):
            pytest.fail("started without its adapter module")
    message = str(info.value)
    assert "adapter module 'no_such_tools' not found" in message
    assert "looked in:" in message and "cwd" in message
    assert "Traceback" not in message    # where it looked says more than a stack
