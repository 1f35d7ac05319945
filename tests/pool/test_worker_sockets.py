"""A pipe worker that fails before it is ready leaves no socket behind: the host's end of its
pipe is closed when the process is reaped, not whenever the garbage collector gets to it."""

import gc
import os

import pytest

import snakepit
from snakepit import errors


def sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{fd} {target}")
    return found


async def test_a_pipe_worker_that_never_got_its_transport_leaves_no_socket(make_config):
    config = make_config(size=2, adapter="pool_adapters:FailingInitAdapter", transport="pipe")
    gc.collect()
    before = sockets()
    gc.disable()   # what is left must be closed by the host, not collected
    try:
        with pytest.raises(errors.WorkerStartError):
            async with snakepit.start(config):
                pass
        assert sockets() - before == set()
    finally:
        gc.enable()
