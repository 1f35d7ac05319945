"""``python -m snakepit_bridge.zygote --adapter module:Class --control-fd N --ready-fd M``.

A zygote imports the worker's code once (protobuf, snakepit_bridge, the carrier of its
``--transport``: grpc only for gRPC workers, and the adapter's module) and then forks workers on
request, so a worker starts without paying for those imports and shares their memory with its
siblings. It creates no gRPC channel or server before a fork. Before it serves, it also does
what every fork would otherwise repeat (the adapter's tool descriptions) and freezes the garbage collector's view of what it holds (``gc.freeze``): a
fork's collections then never walk, and so never copy, the pages it shares with the zygote.

Control: a SOCK_SEQPACKET socket from the host. Each host message is one JSON object with the
fds it passes attached (SCM_RIGHTS)::

    {"op": "fork", "id": 7, "argv": [...worker flags...], "env": {...}, "cwd": null}
      fds: stdin, stdout, stderr, then one per entry of "remap": {"--ready-fd": 0, ...}
    -> {"id": 7, "pid": 1234}             or {"id": 7, "error": "..."}
    <- {"exit": 1234, "code": 0}          whenever a forked worker exits (negative: signal)

A forked worker is what ``python -m snakepit_bridge`` would be: its own session and process
group, its stdin/stdout/stderr from the host (stdin's EOF still means "the host is gone"), its
environment and working directory from the request. The zygote reaps its children and reports
their exit codes; it exits when the host closes the control socket or its stdin.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any

from snakepit_bridge.lifetime import ready_line, report_ready
from snakepit_bridge.protocol import EXIT_INIT, GRPC_FORK_SUPPORT_ENV

MAX_FDS = 16


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m snakepit_bridge.zygote")
    p.add_argument("--adapter", required=True, help="module.path:ClassName to preload")
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--ready-fd", type=int, required=True)
    p.add_argument("--transport", choices=["pipe", "grpc"], default="grpc",
                   help="the carrier whose code to preload (default: grpc)")
    return p


def preload(adapter: str, transport: str = "grpc") -> None:
    """Do once what each worker would do before serving, short of the per-process parts
    (no adapter instance, channel, server or event loop): import the worker's code and the
    carrier of ``transport``, describe the adapter's tools."""
    from snakepit_bridge import __main__, worker  # noqa: F401
    from snakepit_bridge.adapter_loading import load_adapter_class
    if transport == "pipe":
        from snakepit_bridge import pipe_server  # noqa: F401
    else:
        from snakepit_bridge import server  # noqa: F401
    import concurrent.futures.thread  # noqa: F401  (the tool threads: imported lazily)
    # OpenSSL initialized here, once, shared: without it each fork's malloc heap grew by
    # ~0.4 MB (16 forks, pipe 5.0 -> 5.3 MB PSS, gRPC 6.9 -> 7.2; why is not understood)
    import hashlib  # noqa: F401
    describe = getattr(load_adapter_class(adapter), "describe_tools", None)
    if describe is not None:   # a BaseAdapter (others describe their tools themselves)
        describe()


class Zygote:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        self.children: set[int] = set()

    def send(self, message: dict[str, Any]) -> None:
        self.control.send(json.dumps(message).encode())

    def serve(self) -> int:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            while True:
                control = self.control.fileno()
                ready, _, _ = select.select([control, self.wake_r, 0], [], [])
                if self.wake_r in ready:
                    while True:
                        try:
                            if not os.read(self.wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                    self.reap()
                if 0 in ready and not os.read(0, 4096):
                    return 0   # stdin closed: the host is gone
                if control in ready:
                    data, fds, _, _ = socket.recv_fds(self.control, 1 << 20, MAX_FDS)
                    if not data:
                        return 0   # the host closed the control socket
                    self.handle(json.loads(data), fds)
        finally:
            self.reap()

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            try:
                self.send({"exit": pid, "code": code})
            except OSError:
                pass

    def handle(self, request: dict[str, Any], fds: list[int]) -> None:
        rid = request.get("id")
        try:
            if request.get("op") != "fork":
                raise ValueError(f"unknown op {request.get('op')!r}")
            pid = self.fork(request, fds)
        except Exception as exc:
            self.send({"id": rid, "error": f"{type(exc).__name__}: {exc}"})
        else:
            self.children.add(pid)
            self.send({"id": rid, "pid": pid})
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def fork(self, request: dict[str, Any], fds: list[int]) -> int:
        remap: dict[str, int] = request.get("remap", {})
        if len(fds) != 3 + len(remap):
            raise ValueError(f"expected {3 + len(remap)} fds, got {len(fds)}")
        sys.stdout.flush()
        sys.stderr.flush()
        sync_r, sync_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(sync_r)
            self._child(request, fds, sync_w)   # never returns
        os.close(sync_w)
        os.read(sync_r, 1)   # EOF once the child has its own session (so killpg reaches it)
        os.close(sync_r)
        return pid

    def _child(self, request: dict[str, Any], fds: list[int], sync_w: int) -> None:
        code = 70
        try:
            os.setsid()
            os.close(sync_w)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            self.control.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            stdin, stdout, stderr, *passed = fds
            for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
                os.dup2(fd, target)
            for fd in (stdin, stdout, stderr):
                if fd > 2:
                    os.close(fd)
            argv = list(request["argv"])
            for flag, index in request.get("remap", {}).items():
                argv[argv.index(flag) + 1] = str(passed[index])
            os.environ.clear()
            os.environ.update(request["env"])
            if request.get("cwd"):
                os.chdir(request["cwd"])
            from snakepit_bridge.__main__ import main
            code = main(argv)   # exits the process itself
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ[GRPC_FORK_SUPPORT_ENV] = "false"
    gc.disable()   # what it imports lives as long as it does; frozen below, on in each fork
    try:
        preload(args.adapter, args.transport)
    except Exception as exc:
        traceback.print_exc()
        print(f"zygote cannot preload {args.adapter!r}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_INIT
    control = socket.socket(fileno=args.control_fd)
    # Everything preloaded so far is shared with every fork; the collector's passes in a fork
    # would write to each of those objects' headers and copy their pages.
    gc.freeze()
    gc.enable()
    report_ready(args.ready_fd, ready_line(port=0, worker_id="zygote", transport="zygote"))
    return Zygote(control).serve()


if __name__ == "__main__":
    sys.exit(main())
