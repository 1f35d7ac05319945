"""The host's side of a zygote when the zygote dies in the middle of a fork: a fork whose reply
is read only after the zygote's forks were killed must not live on as an orphaned worker."""

import array
import json
import socket
import subprocess
import sys

import pytest
import trio

from snakepit.errors import WorkerStartError
from snakepit.pool.zygote import Zygote


class NoProcess:
    returncode = None


async def test_a_fork_replied_after_the_forks_were_killed_is_killed_too():
    host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = Zygote(NoProcess(), host_end, ["python", "-m", "snakepit_bridge.zygote"])
    # what the zygote forked: a process in a group of its own, as a fork is
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(zygote.run)
            fake = trio.socket.from_stdlib_socket(zygote_end)

            async def zygote_side() -> None:
                data, ancdata, _, _ = await fake.recvmsg(1 << 16, socket.CMSG_SPACE(64))
                for level, kind, payload in ancdata:
                    if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                        for fd in array.array("i", payload[:len(payload) // 4 * 4]):
                            socket.close(fd)
                request = json.loads(data)
                # the zygote dies after this fork; the host kills its known forks before
                # it reads the reply
                zygote.kill_forks()
                await fake.send(json.dumps({"id": request["id"], "pid": orphan.pid}).encode())

            nursery.start_soon(zygote_side)
            with pytest.raises(WorkerStartError, match="the zygote went away"):
                await zygote.fork([sys.executable, "-m", "snakepit_bridge", "--adapter", "m:A"],
                                  env={}, cwd=None, worker_id="w-1", pass_fds=())
            nursery.cancel_scope.cancel()
        with trio.fail_after(10):
            while orphan.poll() is None:
                await trio.sleep(0.02)
        assert orphan.returncode == -9
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        zygote_end.close()
        host_end.close()
