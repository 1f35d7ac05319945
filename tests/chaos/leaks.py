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


class Load:
    """Callers that run ``echo`` until ``over`` is set, counting outcomes: ``ok``,
    ``WorkerCrashed``, ``hung`` (no answer within ``hung_after``) and any other error by type
    (kept in ``unexpected``; that caller stops, as the application may be gone)."""

    def __init__(self, app, over: trio.Event, hung_after: float) -> None:
        import collections
        self.app, self.over, self.hung_after = app, over, hung_after
        self.outcomes: collections.Counter = collections.Counter()
        self.unexpected: list[BaseException] = []

    async def caller(self, args_for) -> None:
        import snakepit
        n = 0
        while not self.over.is_set():
            n += 1
            try:
                with trio.fail_after(self.hung_after):
                    await self.app.execute("echo", args_for(n))
                self.outcomes["ok"] += 1
            except snakepit.WorkerCrashed:
                self.outcomes["WorkerCrashed"] += 1
            except trio.TooSlowError:
                self.outcomes["hung"] += 1
            except Exception as exc:   # noqa: BLE001 - anything else is a finding
                self.outcomes[type(exc).__name__] += 1
                self.unexpected.append(exc)
                return
