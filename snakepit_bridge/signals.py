"""How snakepit stops a process group: one escalation for every path that stops processes.

    for signals, wait in escalation(grace):     # grace > 0: SIGTERM+SIGCONT, wait, SIGKILL
        for sig in signals:                     # grace == 0: SIGKILL at once
            signal_group(pid, sig)
        ... wait up to `wait` seconds for the leader to exit ...

A worker being recycled or stopped in order gets SIGTERM and ``shutdown_grace`` to finish its
work; one that is unresponsive or unreachable gets SIGKILL at once (waiting would only keep its
slot empty). SIGCONT follows SIGTERM so that a stopped (SIGSTOP) process wakes up to act on it.
The last step always signals the whole group, even when the leader is already gone: a tool's
child may live on in it. Used by the host's ``WorkerProcess`` (async, trio), its process
registry's orphan sweep (sync, in a thread), and the Ray actor that owns a remote worker (it
lives in the bridge so that a worker-side environment has it too).
"""

from __future__ import annotations

import os
import signal

TERMINATE = (signal.SIGTERM, signal.SIGCONT)
KILL = (signal.SIGKILL,)


def escalation(grace: float) -> list[tuple[tuple[int, ...], float]]:
    """The steps to stop a process group: (signals to send, seconds to wait after them)."""
    if grace <= 0:
        return [(KILL, 0.0)]
    return [(TERMINATE, grace), (KILL, 0.0)]


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (or ``pid`` alone if it leads none)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
