"""``@tool`` keeps a method's signature for type checkers (mypy --strict on a user adapter)."""

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def test_a_tool_method_keeps_its_signature_for_mypy(tmp_path):
    misuse = tmp_path / "misuse.py"
    misuse.write_text(textwrap.dedent('''
        from typing import assert_type
        from typed_adapter import Typed

        t = Typed()
        t.add(1, "2")
        assert_type(t.add(1, 2), int)
        t.count(n="3")
        s: int = t.greet  # a method, not an int
    '''))
    out, err, status = mypy_api.run([
        "--strict", "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / "cache"), str(HERE / "typed_adapter.py"), str(misuse)])
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert not [line for line in lines if "typed_adapter.py" in line], out
    assert [line.split(":")[1] for line in lines] == ["6", "8", "9"], out
    assert 'Argument 2 to "add" of "Typed" has incompatible type "str"; expected "int"' in out
    assert 'Argument "n" to "count" of "Typed" has incompatible type "str"' in out
