"""SIGTERM is Ctrl-C for snakepit.start, Client and the CLI, unless the program handles SIGTERM
itself (then snakepit leaves it alone). The subprocess versions, with a tool's grandchild, are
tests/chaos/test_host_death.py."""

import os
import signal
import threading

import pytest
import trio

import snakepit
from snakepit.sigterm import Terminated


def _sigterm_myself() -> None:
    # Only once a handler is in place: with the default action this would end the test run.
    assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL, "nobody handles SIGTERM here"
    os.kill(os.getpid(), signal.SIGTERM)


async def test_sigterm_leaves_the_start_block_as_ctrl_c_does(make_config):
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ran_finally = False
    with pytest.raises(KeyboardInterrupt) as info:
        async with snakepit.start(make_config(size=1)) as app:
            try:
                assert await app.execute("add", {"a": 1, "b": 2}) == 3
                _sigterm_myself()
                await trio.sleep_forever()
            finally:
                ran_finally = True
    assert isinstance(info.value, Terminated)
    assert ran_finally
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # given back


async def test_an_app_that_handles_sigterm_keeps_it(make_config):
    got = trio.Event()
    token = trio.lowlevel.current_trio_token()
    previous = signal.signal(signal.SIGTERM,
                             lambda *_: token.run_sync_soon(got.set))
    try:
        async with snakepit.start(make_config(size=1)) as app:
            _sigterm_myself()
            with trio.fail_after(10):
                await got.wait()
            assert await app.execute("add", {"a": 2, "b": 2}) == 4   # still running
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_leaves_a_client_block_as_ctrl_c_does(make_config):
    ran_finally = False
    stop = threading.Event()
    with pytest.raises(Terminated):
        with snakepit.Client(make_config(size=1)) as sp:
            try:
                assert sp.execute("add", {"a": 1, "b": 1}) == 2
                _sigterm_myself()
                stop.wait(30)   # interrupted by the handler, as Ctrl-C would
            finally:
                ran_finally = True
    assert ran_finally and not stop.is_set()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_cli_exits_128_plus_the_signal(monkeypatch):
    from snakepit import cli
    from snakepit.cli import demo

    def terminated(args):
        raise Terminated()

    monkeypatch.setattr(demo, "run", terminated)
    assert cli.main(["demo"]) == 128 + signal.SIGTERM
