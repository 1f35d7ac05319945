"""WorkerActor: the Ray actor that runs one snakepit worker process on its node and owns it.

The host (``snakepit.placement.ray``) wraps this class with ``ray.remote`` and calls it:

    actor = ray.remote(WorkerActor).options(num_cpus=1, scheduling_strategy="SPREAD").remote()
    ready = ray.get(actor.start.remote(["-m", "snakepit_bridge", ...], env, None, 30.0))
    # ready == {"port": 40123, "pid": 812, "address": "10.0.0.7", "node_id": "ab12...",
    #           "info": {...the worker's readiness line...}}
    code = ray.get(actor.wait.remote())          # blocks until the worker process exits
    ray.get(actor.stop.remote(6.0))              # SIGTERM its group, grace, SIGKILL; reaped

The worker runs in its own process group; its stdin is a pipe only this actor holds, so when
Ray kills the actor (the driver died, the node is being removed) the worker sees EOF and exits
(``snakepit_bridge.lifetime``). The worker binds the address Ray reports for this node
(``BIND_HOST_ENV``), never 0.0.0.0, and serves TLS with the host's per-run CA.

Only ``snakepit_bridge`` and ``ray`` need to be installed on a node; ``ray`` is imported
lazily so that importing this module costs nothing where Ray is absent.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from snakepit_bridge.protocol import BIND_HOST_ENV
from snakepit_bridge.signals import KILL, escalation, signal_group

STDERR_TAIL = 50
READY_FD_FLAG = "--ready-fd"


class WorkerActor:
    """One worker process on this actor's node (see the module docstring)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._lock = threading.Lock()

    def start(self, args: list[str], env: dict[str, str], python: str | None,
              startup_timeout: float) -> dict[str, Any]:
        """Start ``python args...`` (``python`` None: this node's interpreter) with this
        node's environment plus ``env``; return its readiness once it serves, or raise
        ``RuntimeError`` with its stderr."""
        import ray

        address = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        if address in ("", "0.0.0.0", "::"):
            raise RuntimeError(f"Ray reports no usable address for this node: {address!r}")
        read_fd, write_fd = os.pipe()
        argv = [python or sys.executable, *_with_ready_fd(args, write_fd)]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), start_new_session=True,
                env={**os.environ, **env, BIND_HOST_ENV: address})
        finally:
            os.close(write_fd)
        pumps = [threading.Thread(target=self._pump, args=(stream,), daemon=True)
                 for stream in (self._proc.stdout, self._proc.stderr)]
        for pump in pumps:
            pump.start()
        line = _read_line(read_fd, startup_timeout)
        if line is None:
            try:   # EOF: it is exiting; a timeout: it is not
                code: int | None = self._proc.wait(2.0)
            except subprocess.TimeoutExpired:
                code = None
            self.stop(0.0)
            for pump in pumps:   # the rest of its stderr (a grandchild may hold it open)
                pump.join(1.0)
            what = f"exited with code {code} before reporting ready" if code is not None \
                else f"did not report ready within {startup_timeout} s"
            raise RuntimeError(f"worker {what}; its stderr ends with:\n" +
                               "\n".join(self._tail))
        info = json.loads(line)
        return {"port": int(info["port"]), "pid": int(info.get("pid", self._proc.pid)),
                "address": address, "node_id": ray.get_runtime_context().get_node_id(),
                "info": info}

    def _pump(self, stream: Any) -> None:
        """The worker's output goes to this actor's stderr (Ray forwards it to the driver's
        log); stderr lines are kept for start errors."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._tail.append(line)
            print(line, file=sys.stderr, flush=True)

    def wait(self) -> int:
        """Block until the worker process exits; its exit code."""
        if self._proc is None:
            return -1
        return self._proc.wait()

    def stop(self, grace: float) -> int | None:
        """SIGTERM the worker's process group, ``grace`` seconds, then SIGKILL; reaped."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
            for sigs, wait in escalation(grace):
                # the last step always: a tool's child may live on in the group
                if proc.poll() is None or sigs == KILL:
                    for sig in sigs:
                        signal_group(proc.pid, sig)
                if wait and proc.poll() is None:
                    try:
                        proc.wait(wait)
                    except subprocess.TimeoutExpired:
                        pass
            return proc.wait()

    def tail(self) -> list[str]:
        return list(self._tail)


def _with_ready_fd(args: list[str], fd: int) -> list[str]:
    """``args`` with the value after ``--ready-fd`` replaced by this node's ``fd``."""
    out = list(args)
    try:
        at = out.index(READY_FD_FLAG)
    except ValueError:
        return [*out, READY_FD_FLAG, str(fd)]
    out[at + 1] = str(fd)
    return out


def _read_line(fd: int, timeout: float) -> str | None:
    """The first line written to ``fd`` within ``timeout`` s (None on EOF or timeout)."""
    import select

    deadline = time.monotonic() + timeout
    data = b""
    try:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            data += chunk
    finally:
        os.close(fd)
    return data.split(b"\n", 1)[0].decode()
