"""The admin endpoint: a unix socket (owner-only) where ``snakepit inspect`` reads a snapshot.

Its path is ``<state_dir>/admin/<instance>.sock`` (the directory is mode 0700). A client sends
one line of JSON (``{"command": "snapshot"}``) and reads one JSON document back. At most
``MAX_CONNECTIONS`` are served at once, each for at most ``REQUEST_TIMEOUT`` seconds of
silence; a connection over the cap is closed at once, so idle clients cannot pile up fds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import trio

MAX_REQUEST = 4096
MAX_CONNECTIONS = 16    # `snakepit inspect`/`top` hold one each, for milliseconds
REQUEST_TIMEOUT = 5.0


def socket_path(state_dir: Path, instance: str) -> Path:
    return Path(state_dir) / "admin" / f"{instance}.sock"


def snapshot(host: Any, started_at: float) -> dict[str, Any]:
    pools = []
    for pool_cfg in host.config.pools:
        pool = host.registry.whereis(("pool", pool_cfg.name))
        entry: dict[str, Any] = {"name": pool_cfg.name, "size": pool_cfg.size,
                                 "running": pool is not None}
        if pool is not None:
            entry["stats"] = pool.stats()
            entry["workers"] = pool.workers()
            for w in entry["workers"]:
                w["uptime"] = time.time() - w["started_at"] if w.get("started_at") else None
        pools.append(entry)
    registry = host.process_registry
    processes: dict[str, Any] = {}
    if registry is not None:
        import psutil
        entries = registry.entries()
        live = [e for e in entries if e["pid"] and psutil.pid_exists(e["pid"])]
        processes = {"tracked": len(entries), "live": len(live),
                     "stale": len(entries) - len(live)}
    sessions = host.sessions.stats() if host.sessions is not None else {}
    return {"instance": host.config.instance_name, "pid": os.getpid(), "run_id": host.run_id,
            "uptime": time.time() - started_at, "pools": pools, "sessions": sessions,
            "processes": processes, "config": {
                p.name: {"queue_timeout": p.queue_timeout, "max_queue_size": p.max_queue_size,
                         "worker_max_memory_mb": p.worker_max_memory_mb,
                         "profile": p.profile} for p in host.config.pools}}


async def serve_admin(host: Any, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    path = socket_path(host.state_dir, host.config.instance_name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.exists() or path.is_socket():
        try:
            query(path, timeout=1.0)
        except OSError:
            path.unlink()   # a dead run's socket
        else:
            from snakepit.errors import ConfigError
            raise ConfigError(f"instance {host.config.instance_name!r} is already running with "
                              f"state_dir {str(host.state_dir)!r} (admin socket {path}); use "
                              f"another instance_name or state_dir")
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(16)
    started_at = time.time()
    active = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal active
        if active >= MAX_CONNECTIONS:
            await stream.aclose()
            return
        active += 1
        try:
            await answer(stream)
        finally:
            active -= 1

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            with trio.move_on_after(REQUEST_TIMEOUT):
                while b"\n" not in data and len(data) < MAX_REQUEST:
                    chunk = await stream.receive_some(1024)
                    if not chunk:
                        break
                    data += chunk
            try:
                command = json.loads(data or b"{}").get("command", "snapshot")
                if command != "snapshot":
                    raise ValueError(f"unknown command {command!r}; known: snapshot")
                reply: Any = snapshot(host, started_at)
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                await stream.send_all(json.dumps(reply, default=str).encode() + b"\n")
            except trio.BrokenResourceError:
                pass        # the client left without waiting: not the admin server's failure

    try:
        task_status.started(path)
        await trio.serve_listeners(handle, [trio.SocketListener(sock)])
    finally:
        try:
            path.unlink()
        except OSError:
            pass


def query(path: Path, command: str = "snapshot", timeout: float = 5.0) -> dict[str, Any]:
    """Blocking client (for the CLI)."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    result: dict[str, Any] = json.loads(data)
    return result
