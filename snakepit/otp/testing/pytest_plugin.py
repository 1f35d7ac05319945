"""An opt-in pytest plugin (never loaded unless you ask): in your ``conftest.py``

    pytest_plugins = ["snakepit.otp.testing.pytest_plugin"]

    async def test_restart(otp_clock, quiet_otp_logs):   # pytest-trio runs it on otp_clock
        ...

``otp_clock`` is a ``trio.testing.MockClock(autojump_threshold=0)``: time jumps ahead whenever
every task is blocked, so "wait 5 s" costs nothing. It is named so as not to shadow
pytest-trio's own ``mock_clock`` / ``autojump_clock`` fixtures. ``quiet_otp_logs`` raises the
``snakepit.otp`` logger to ERROR (injected crashes are expected, not news) from the first test
of a module that asks for it to the end of that module: module-scoped, so that hypothesis
tests (which refuse function-scoped fixtures) can use it too.
"""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
import trio.testing


@pytest.fixture
def otp_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture(scope="module")
def quiet_otp_logs() -> Iterator[None]:
    logger = logging.getLogger("snakepit.otp")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)
