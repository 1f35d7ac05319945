"""Waiting on what a real worker reports, for pool tests: a predicate polled with a deadline,
and a tool gated on a FIFO (`MisbehavingAdapter.block_on`) that creates a marker file when it
starts — so a test waits for events, never for a delay."""

import os

import trio


async def wait_for(predicate, timeout=15.0):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


def release(fifo):
    # Opening for writing unblocks the tool's open(); the write ends its read().
    fd = os.open(fifo, os.O_WRONLY)
    os.write(fd, b"done")
    os.close(fd)


async def started(marker, within=10.0):
    """Until the tool has reported that it runs (it creates ``marker``)."""
    await wait_for(lambda: os.path.exists(marker), within)


class Gate:
    """A `block_on` call: ``started`` exists once the tool runs; ``release()`` ends it."""

    def __init__(self, tmp_path, name):
        self.fifo, self.started = str(tmp_path / f"{name}.fifo"), str(tmp_path / f"{name}.run")
        os.mkfifo(self.fifo)

    @property
    def args(self):
        return {"path": self.fifo, "started": self.started}

    def ran(self):
        return os.path.exists(self.started)

    async def running(self):
        await started(self.started)

    def release(self):
        release(self.fifo)
