"""Every example runs to completion as a script (as a user would run it)."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


EXPECTED_OUTPUT = {   # a line each OTP example prints only when it did what it shows
    "otp_tree": "after the restart: [('store', 2), ('ticker', 2), ('workers', 2)]",
    "otp_embedded_server": "stats: {'connections': 4, 'lines': 7}",
    "otp_property_test": "3 passed",
}


def test_examples_exist():
    assert len(EXAMPLES) >= 7
    assert {p.stem for p in EXAMPLES} >= set(EXPECTED_OUTPUT)
    assert any("otp.GenServer" in p.read_text() for p in EXAMPLES if p.stem.startswith("otp_"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path, tmp_path):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert proc.stdout.strip()
    if path.stem in EXPECTED_OUTPUT:
        assert EXPECTED_OUTPUT[path.stem] in proc.stdout, proc.stdout


def test_readme_stream_examples_print_each_chunk_the_tool_yielded_and_nothing_more(tmp_path):
    # the README's first two blocks: the trio example, then the Client one (same config)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    script = "".join(re.findall(r"```python\n(.*?)```", readme, re.S)[:2])
    assert script.count(".stream(") == 2
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "5" and len(lines) == 7, lines
    steps = [ast.literal_eval(line)["step"] for line in lines[1:]]
    assert steps == [1, 2, 3, 1, 2, 3], lines
