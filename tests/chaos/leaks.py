"""What the chaos tests measure: this process's open fds, snakepit's shared-memory segments,
processes by pid; and polling the public state with a deadline."""

import glob
import os
import time

import psutil
import trio


def fds() -> dict[str, str]:
    """This process's open fds and what they point at."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass    # the one listdir itself used
    return out


def segments() -> set[str]:
    return set(glob.glob("/dev/shm/snakepit-*"))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_for(predicate, within: float) -> None:
    """Poll ``predicate()`` until it holds; fails after ``within`` seconds."""
    with trio.fail_after(within):
        while not predicate():
            await trio.sleep(0.05)


def wait_until(predicate, within: float) -> bool:
    """The same from sync code (a test driving subprocesses): whether it held in time."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
