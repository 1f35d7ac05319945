"""The admin endpoint: a unix socket (owner-only) where ``snakepit inspect`` reads a snapshot.

Every run serves its own socket, ``<state_dir>/admin/<run_id>.sock`` (the directory is mode
0700), so any number of applications — of one instance name or several — run side by side;
:func:`running_apps` finds the ones that answer. A client sends one line of JSON
(``{"command": "snapshot"}``, or ``"checks"``: the diagnose checks of the app's own config)
and reads one JSON document back. At most ``MAX_CONNECTIONS`` are served at once, each for at
most ``REQUEST_TIMEOUT`` seconds of silence; a connection over the cap is closed at once, so
idle clients cannot pile up fds.

    for app in running_apps(state_dir):
        print(app["instance"], app["pid"], app["run_id"])
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import trio

from snakepit.state_files import remove_socket, socket_bind_path, socket_connect_path

MAX_REQUEST = 4096
MAX_CONNECTIONS = 16    # `snakepit inspect`/`top` hold one each, for milliseconds
REQUEST_TIMEOUT = 5.0


def socket_path(state_dir: Path, run_id: str) -> Path:
    """The admin socket of run ``run_id`` (the run id keeps the path short: sun_path is
    ~107 bytes)."""
    return Path(state_dir) / "admin" / f"{run_id}.sock"


def running_apps(state_dir: Path, instance: str | None = None, timeout: float = 2.0
                 ) -> list[dict[str, Any]]:
    """Snapshots of the applications running under ``state_dir`` (of ``instance`` if given),
    oldest first; each has ``"socket"``. Sockets nobody answers (runs killed with -9) are
    skipped: the next start's orphan sweep removes them."""
    found = []
    for path in sorted(Path(state_dir).glob("admin/*.sock")):
        try:
            snap = query(path, timeout=timeout)
        except (OSError, ValueError):
            continue
        if "error" in snap or (instance is not None and snap.get("instance") != instance):
            continue
        snap["socket"] = str(path)
        found.append(snap)
    return sorted(found, key=lambda s: -float(s.get("uptime", 0)))


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
        entries = registry.entries(this_run=True)
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
    path = socket_path(host.state_dir, host.run_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    bind = socket_bind_path(path)   # a short path that `path` links to, if `path` is too long
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(str(bind))
    os.chmod(bind, 0o600)
    if bind != path:
        remove_socket(path)
        path.symlink_to(bind)
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
                reply: Any
                if command == "snapshot":
                    reply = snapshot(host, started_at)
                elif command == "checks":   # `snakepit diagnose` of this app's own config
                    from snakepit.cli.diagnose import checks
                    reply = {"checks": await trio.to_thread.run_sync(
                        checks, host.config, host.state_dir)}
                else:
                    raise ValueError(f"unknown command {command!r}; known: snapshot, checks")
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
        remove_socket(path)


def query(path: Path, command: str = "snapshot", timeout: float = 5.0) -> dict[str, Any]:
    """Blocking client (for the CLI)."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_connect_path(path))
        s.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    result: dict[str, Any] = json.loads(data)
    return result
