"""SIGTERM as Ctrl-C: what systemd, docker and Kubernetes send gets the same orderly shutdown.

``snakepit.start``, ``Client``, ``run_as_script`` and the CLI turn SIGTERM into
:class:`Terminated`, a ``KeyboardInterrupt``, raised where Ctrl-C's would be: in the code
running the application's block, so its ``finally`` blocks run, the pools stop and every
worker is reaped before the process ends.

They take the signal only when nobody else has: in the main thread, and only while SIGTERM
still has its default disposition. An application that installed its own SIGTERM handler
(or ignores it) keeps it, and stops snakepit itself, as it does on its own schedule. The
previous disposition is restored when the block ends (ADR 0002, "Signals").

    async with sigterm_interrupts():      # trio code: SIGTERM cancels the block,
        ...                               # then Terminated is raised from it

    taken = install_sync()                # sync code: SIGTERM raises Terminated here
    try: ...
    finally: uninstall_sync(taken)
"""

from __future__ import annotations

import signal
import threading
from contextlib import asynccontextmanager
from types import FrameType
from typing import AsyncIterator

import trio

from snakepit.otp import unwrap_group


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised where Ctrl-C's ``KeyboardInterrupt`` would be."""

    signum = signal.SIGTERM

    def __init__(self) -> None:
        super().__init__("SIGTERM: stopping as on Ctrl-C")


def ours_to_take() -> bool:
    """Whether SIGTERM is free for snakepit to handle here (main thread, default action)."""
    return threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def install_sync() -> bool:
    """For sync code: SIGTERM raises :class:`Terminated` in the main thread, as SIGINT raises
    ``KeyboardInterrupt``. Returns whether the handler was installed (see module doc)."""
    if not ours_to_take():
        return False
    signal.signal(signal.SIGTERM, _raise_terminated)
    return True


def uninstall_sync(installed: bool) -> None:
    """Undo :func:`install_sync` if it installed the handler and it is still ours."""
    if installed and threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@asynccontextmanager
async def sigterm_interrupts() -> AsyncIterator[None]:
    """For trio code: while the block runs, SIGTERM cancels it and then raises
    :class:`Terminated` from it (if SIGTERM is ours to take; otherwise a no-op)."""
    if not ours_to_take():
        yield
        return
    # trio's receiver, not a raising handler: an exception from a signal handler could land
    # inside trio's own bookkeeping; the receiver wakes a task at a checkpoint instead.
    with trio.open_signal_receiver(signal.SIGTERM) as received:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_terminate_on_first, received)
                try:
                    yield
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None


async def _terminate_on_first(received: AsyncIterator[int]) -> None:
    async for _ in received:
        raise Terminated()
