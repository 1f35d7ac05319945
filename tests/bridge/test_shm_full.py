"""A full segment directory (``/dev/shm`` in production) through a real pipe pool: a clear
error naming the directory and the size, on the host's side (a request) and the worker's (a
result), no segment left behind, and the worker serving on.

The directory is a 4 MiB tmpfs of the test's own (``SNAKEPIT_SHM_DIR``), which needs the right
to mount: without it the test is skipped with the reason ``mount`` gave. Without a mount, the
allocation failure itself is covered by tests/bridge/test_shm_one_copy.py."""

import os
import subprocess

import numpy as np
import pytest

import snakepit
from shm_values import MB
from snakepit_bridge import shm
from snakepit_bridge.protocol import SHM_DIR_ENV


@pytest.fixture
def small_tmpfs(tmp_path, monkeypatch):
    path = tmp_path / "shm"
    path.mkdir()
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a 4 MiB tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"mount said {probe.stderr.strip() or probe.returncode!r}")
    monkeypatch.setattr(shm, "SHM_DIR", str(path))   # the host; the workers read the env var
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("transport", ["pipe"])
async def test_a_full_segment_directory_is_a_clear_error_on_both_sides(make_config, transport,
                                                                       small_tmpfs):
    config = make_config(size=1, adapter="pool_adapters:BigValues",
                         env={SHM_DIR_ENV: small_tmpfs})
    async with snakepit.start(config) as app:
        (worker,) = app.workers()
        # the host's request: 6 MB cannot fit in 4 MiB
        with pytest.raises(snakepit.SnakepitError) as caught:
            await app.execute("echo", {"a": np.ones(6 * MB // 8)})
        assert f"{small_tmpfs} has no room for a {6 * MB}-byte" in str(caught.value)
        assert os.listdir(small_tmpfs) == []
        # the worker's result: the request's 3 MB segment fits, and stays mapped by the array
        # the tool returns, so the result's 3 MB segment does not
        with pytest.raises(snakepit.SnakepitError) as caught:
            await app.execute("echo", {"a": np.ones(3 * MB // 8)})
        assert f"{small_tmpfs} has no room for a {3 * MB}-byte" in str(caught.value)
        assert os.listdir(small_tmpfs) == []
        # nothing was left behind that holds the space: the same worker carries 3 MB again
        out = await app.execute("echo", {"a": b"z" * (3 * MB)})
        assert out == {"a": b"z" * (3 * MB)}
        assert app.workers()[0]["pid"] == worker["pid"]
    assert os.listdir(small_tmpfs) == []
