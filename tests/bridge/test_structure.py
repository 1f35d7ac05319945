"""The worker side's shape: the carriers stand on the core, not on each other, and each
protocol constant is defined once (snakepit_bridge/protocol.py), for the host too."""

import ast
import re
from pathlib import Path

import pytest

from snakepit_bridge import protocol

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "snakepit_bridge"
CARRIERS = {"server": BRIDGE / "server.py", "pipe_server": BRIDGE / "pipe_server.py"}


def imports(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("name", sorted(CARRIERS))
def test_a_carrier_imports_the_core_and_not_the_other_carrier(name):
    found = set(imports(CARRIERS[name]))
    assert "snakepit_bridge.core" in found
    others = {f"snakepit_bridge.{other}" for other in CARRIERS if other != name}
    assert not found & others, f"{name}.py imports {found & others}"


def test_protocol_imports_nothing():
    assert set(imports(BRIDGE / "protocol.py")) == {"__future__"}


# the literal values the old copies spelled out, and a way to spell each
COPIES = {
    "the secret header": re.compile(r"""["']x-snakepit-secret["']"""),
    "the secret's variable": re.compile(r"""["']SNAKEPIT_SECRET["']"""),
    "the shm prefix variable": re.compile(r"""["']SNAKEPIT_SHM_PREFIX["']"""),
    "the message limit": re.compile(r"256\s*\*\s*1024\s*\*\s*1024"),
    "the thread-limit variables": re.compile(r"""["']OPENBLAS_NUM_THREADS["']"""),
}


@pytest.mark.parametrize("what", sorted(COPIES))
def test_each_protocol_constant_is_defined_once_for_python(what):
    sources = [p for p in sorted([*BRIDGE.rglob("*.py"), *(ROOT / "snakepit").rglob("*.py")])
               if "proto" not in p.relative_to(ROOT).parts[:2]]
    found = [str(p.relative_to(ROOT)) for p in sources if COPIES[what].search(p.read_text())]
    assert found == ["snakepit_bridge/protocol.py"], f"{what} is spelled out in {found}"


def test_the_limits_agree():
    assert protocol.MAX_FRAME == protocol.MAX_MESSAGE == 256 * 1024 * 1024
    assert dict(protocol.GRPC_MESSAGE_OPTIONS) == {
        "grpc.max_send_message_length": protocol.MAX_MESSAGE,
        "grpc.max_receive_message_length": protocol.MAX_MESSAGE}
