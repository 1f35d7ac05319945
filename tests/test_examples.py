"""Every example runs to completion as a script (as a user would run it)."""

import os
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
