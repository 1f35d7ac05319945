"""What a running application leaves under state_dir is private, and its admin socket cannot be
flooded with idle connections."""

import os
import stat

import trio

import snakepit
from snakepit.admin import MAX_CONNECTIONS, query, running_apps, socket_path


def _config(state):
    return snakepit.Config(state_dir=str(state), sessions=snakepit.SessionConfig(store="sqlite"),
                           pools=[snakepit.PoolConfig(name="default", size=1)])


async def test_state_files_are_owner_only_in_an_open_state_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        async with snakepit.start(_config(state)) as app:
            await app.sessions.create("s")
            await app.sessions.register_variable("s", "token", "string", "secret")
            # stat, not lstat: a socket under a deep state dir is a link to a short path
            modes = {str(p.relative_to(state)): stat.S_IMODE(p.stat().st_mode)
                     for p in state.rglob("*")}
    finally:
        os.umask(old)
    files = {p: m for p, m in modes.items() if not (state / p).is_dir()}
    assert any(p.startswith("sessions-") for p in files) and "processes.sqlite3" in files
    # files written while running (sockets included) are 0600; what still exists after too
    assert {p: m for p, m in modes.items() if m & 0o077} == {}, modes
    after = {str(p.relative_to(state)): stat.S_IMODE(p.lstat().st_mode) for p in state.rglob("*")}
    assert {p: m for p, m in after.items() if m & 0o077} == {}, after


async def test_admin_socket_caps_idle_connections(tmp_path):
    state = tmp_path / "state"
    async with snakepit.start(_config(state)) as app:
        path = str(socket_path(state, app._host.run_id))
        idle = [await trio.open_unix_socket(path) for _ in range(MAX_CONNECTIONS)]
        extra = [await trio.open_unix_socket(path) for _ in range(3 * MAX_CONNECTIONS)]
        with trio.fail_after(10):          # over the cap: closed by the host at once
            for stream in extra:
                assert await stream.receive_some(1) == b""
        for stream in idle:                # the first ones are still held, unanswered
            with trio.move_on_after(0) as scope:
                await stream.receive_some(1)
            assert scope.cancelled_caught
        for stream in idle + extra:
            await stream.aclose()
        with trio.fail_after(10):
            while True:                    # the slots free up as the host sees the EOFs
                snap = await trio.to_thread.run_sync(query, socket_path(state, app._host.run_id))
                if "error" not in snap:
                    break
        assert snap["instance"] == "default" and app.stats("default")["errors"] == 0


async def test_admin_socket_under_a_state_dir_too_deep_for_a_socket_address(tmp_path):
    """Regression (found running the suite in parallel, where tmp paths are longer): a state
    dir whose socket path exceeds sun_path failed the start with "AF_UNIX path too long". The
    socket is bound at a short private path that the state dir's entry links to."""
    state = tmp_path / ("deep-" * 16) / "state"
    path = socket_path(state, "0123456789abcdef")
    assert len(str(path)) > 108
    async with snakepit.start(_config(state)) as app:
        path = socket_path(state, app._host.run_id)
        assert path.is_symlink()
        target = os.readlink(path)
        assert len(target) <= 100 and stat.S_IMODE(os.stat(target).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(target)).st_mode) == 0o700
        [found] = await trio.to_thread.run_sync(running_apps, state)
        assert found["run_id"] == app._host.run_id
    assert not os.path.lexists(path) and not os.path.exists(target)
