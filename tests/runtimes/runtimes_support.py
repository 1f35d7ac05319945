"""Adapters for every runtime, and what to do when one is missing."""

import os
import tempfile
import shutil
import subprocess
from pathlib import Path

import pytest

from snakepit.adapters import NodeAdapter, PythonAdapter, RubyAdapter

BRIDGE = Path(__file__).resolve().parents[2] / "snakepit_bridge"


def ruby_ready() -> str | None:
    """None when ruby with grpc is usable, else why not."""
    if shutil.which("ruby") is None:
        return "ruby is not installed (Debian: apt-get install ruby ruby-grpc)"
    if subprocess.run(["ruby", "-e", "require 'grpc'"], capture_output=True).returncode:
        return "ruby's grpc gem is missing (Debian: apt-get install ruby-grpc)"
    return None


def make_adapter(runtime, capacity=None):
    if runtime == "python":
        return PythonAdapter("snakepit_bridge.adapters.showcase:ShowcaseAdapter",
                             capacity=capacity)
    if runtime == "node":
        if shutil.which("node") is None:
            _unavailable("node is not installed")
        # one npm install for the whole test run, not one per test's state dir
        deps = os.path.join(tempfile.gettempdir(), "snakepit-test-node-deps")
        return NodeAdapter(script=str(BRIDGE / "node" / "showcase.js"), capacity=capacity,
                           deps_dir=deps)
    why = ruby_ready()
    if why:
        _unavailable(why)
    return RubyAdapter(script=str(BRIDGE / "ruby" / "showcase.rb"), capacity=capacity)


def _unavailable(why):
    if os.environ.get("CI"):   # CI installs every runtime: a missing one is a failure there
        pytest.fail(f"runtime unavailable in CI: {why}")
    pytest.skip(why)
