"""Dependencies point one way: snakepit.otp imports nothing else from snakepit, and
snakepit_bridge imports nothing from snakepit (a worker may only have the bridge)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.parametrize("package,forbidden,allowed", [
    ("snakepit/otp", "snakepit", "snakepit.otp"),
    ("snakepit_bridge", "snakepit", None),
])
def test_imports_point_one_way(package, forbidden, allowed):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    bad = []
    for path in files:
        for mod in imported_modules(path):
            if mod == forbidden or mod.startswith(forbidden + "."):
                if allowed and (mod == allowed or mod.startswith(allowed + ".")):
                    continue
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, bad


@pytest.mark.parametrize("package", ["snakepit/pool", "snakepit/transport"])
def test_pool_and_transport_do_not_reach_up(package):
    """The pool and its transports sit below the application and its facade: they are given
    what they need (a LaunchContext, hooks, the registry), they never import it."""
    above = ("snakepit.application", "snakepit.api", "snakepit.cli", "snakepit.admin")
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for mod in imported_modules(path):
            if any(mod == a or mod.startswith(a + ".") for a in above):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, bad
