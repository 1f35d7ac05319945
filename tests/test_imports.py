"""Importing snakepit is light and has no side effects: checked in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("google.protobuf", "grpc", "opentelemetry", "psutil", "orjson", "numpy",
         "snakepit.pool", "snakepit.transport", "snakepit.telemetry")
# what a worker's code may load before it serves: protobuf and orjson, but none of these
# (attrs: 17 ms and ~3 MB per worker; the worker's own classes are dataclasses)
WORKER_HEAVY = ("grpc", "opentelemetry", "numpy", "snakepit", "attr")

PROBE = """
import json, os, sys
before = dict(os.environ)
{statement}
heavy = sorted({{h for m in sys.modules for h in {heavy!r} if m == h or m.startswith(h + ".")}})
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({{"heavy": heavy, "env_changed": changed}}))
"""


def probe(statement, heavy=HEAVY):
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement, heavy=heavy)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("statement", ["import snakepit.otp", "from snakepit import otp",
                                       "from snakepit.otp import testing"])
def test_otp_import_loads_nothing_heavy_and_changes_no_environment(statement):
    result = probe(statement)
    assert result == {"heavy": [], "env_changed": []}


def test_snakepit_import_changes_no_environment():
    result = probe("import snakepit")
    assert result == {"heavy": [], "env_changed": []}


@pytest.mark.parametrize("statement", [
    "import snakepit_bridge",
    "import snakepit_bridge.__main__, snakepit_bridge.worker, snakepit_bridge.pipe_server",
    "import snakepit_bridge.adapters.showcase",
    # encoding never imports numpy: an array can exist only once numpy is loaded
    "from snakepit_bridge import serialization\nserialization.encode({'b': b'x', 'n': [1.5]})",
])
def test_the_pipe_workers_code_loads_no_numpy_grpc_opentelemetry_or_attrs(statement):
    # (a real worker, after it served a request: tests/bridge/test_worker_imports.py)
    assert probe(statement, WORKER_HEAVY)["heavy"] == []


def test_the_bridge_package_resolves_its_names_on_first_use():
    # python -m snakepit_bridge imports the package before its __main__ turns the collector off
    code = ("import snakepit_bridge\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('snakepit_bridge.'))\n"
            "assert loaded == [], loaded\n"
            "assert 'asyncio' not in sys.modules and 'attrs' not in sys.modules\n"
            "from snakepit_bridge import *\n"
            "assert BaseAdapter.__module__ == 'snakepit_bridge.adapter'\n"
            "assert telemetry is sys.modules['snakepit_bridge.telemetry']\n"
            "assert set(dir(snakepit_bridge)) >= set(snakepit_bridge.__all__)\n")
    probe(code)


def test_otp_testing_does_not_import_hypothesis_until_asked():
    result = probe("from snakepit.otp import testing\n"
                   "assert 'hypothesis' not in sys.modules, 'imported hypothesis eagerly'")
    assert result["heavy"] == []


def test_every_public_name_resolves_lazily():
    code = ("import snakepit\n"
            "missing = [n for n in snakepit.__all__ if not hasattr(snakepit, n)]\n"
            "assert not missing, missing\n"
            "assert snakepit.Config.__module__ == 'snakepit.config'\n"
            "assert 'snakepit.api' in sys.modules\n"
            "from snakepit import *\n"
            "assert Application is snakepit.Application\n")
    probe(code)


def test_unknown_attribute_is_an_attribute_error():
    import snakepit
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        snakepit.NoSuchThing  # noqa: B018


def test_application_start_sets_grpc_fork_support_only_if_unset(tmp_path):
    # the variable is set by the first step of Application.run: one checkpoint is enough,
    # then the app is cancelled before it spawns anything
    code = ("import trio, snakepit\n"
            "assert 'GRPC_ENABLE_FORK_SUPPORT' not in os.environ\n"
            "cfg = snakepit.Config(pools=[snakepit.PoolConfig(name='p', size=1)],\n"
            f"                      state_dir={str(tmp_path)!r})\n"
            "async def main():\n"
            "    async with trio.open_nursery() as n:\n"
            "        n.start_soon(snakepit.Application(cfg).run)\n"
            "        await trio.lowlevel.checkpoint()\n"
            "        n.cancel_scope.cancel()\n"
            "trio.run(main)\n"
            "assert os.environ['GRPC_ENABLE_FORK_SUPPORT'] == 'false'\n"
            "os.environ['GRPC_ENABLE_FORK_SUPPORT'] = 'true'\n"
            "trio.run(main)\n"
            "assert os.environ['GRPC_ENABLE_FORK_SUPPORT'] == 'true', 'overrode the user'\n")
    probe(code)
