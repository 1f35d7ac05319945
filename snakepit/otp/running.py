"""``running(fn)``: run a ``nursery.start``-protocol function for the length of a block.

    async with otp.running(sup.run) as handle:     # fn has reported started
        ...
    # leaving the block cancels fn and waits for it to finish

Errors come out unwrapped: an exception in the block propagates as itself after ``fn`` has
stopped; an error of ``fn`` (while starting or running) is raised as itself, never as a
one-element ``ExceptionGroup``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import trio


def unwrap_group(exc: BaseException) -> BaseException:
    """The single exception inside (nested) one-element exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def running(fn: Callable[..., Awaitable[Any]], *args: Any) -> AsyncIterator[Any]:
    try:
        async with trio.open_nursery() as nursery:
            value = await nursery.start(fn, *args)
            try:
                yield value
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None
