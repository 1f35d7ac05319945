"""ProcessRegistry: every OS process snakepit spawns, in sqlite, so none outlives its host.

    registry = ProcessRegistry.open(state_dir, instance_name="default", run_id=run_id)
    registry.sweep()                          # kill what dead earlier runs left behind
    row = registry.reserve("default-1", argv)  # recorded *before* the spawn
    registry.record(row, pid)                  # pid and process start time, right after
    registry.remove(row)                       # once reaped

Each run owns its records: any number of runs (of one instance name or several) share the
file, and a sweep only ever looks at runs whose host is gone.
A run is dead when its host process (pid + start time) is gone. A leftover of a dead run is
killed — its whole process group, SIGTERM then SIGKILL — only if its pid, start time *and*
command line still match the record, so a process that merely reused the pid is never touched.
Zombies count as dead. The file is WAL-mode sqlite; every call is a short blocking transaction
(sub-millisecond on local disk), safe from several threads.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import psutil

from snakepit_bridge.signals import escalation, signal_group
from snakepit.state_files import private_file, remove_socket

from snakepit_bridge import shm

log = logging.getLogger("snakepit.process_registry")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, instance TEXT NOT NULL, host_pid INTEGER NOT NULL,
    host_start REAL NOT NULL, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS processes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, instance TEXT NOT NULL,
    worker_id TEXT NOT NULL, cmdline TEXT NOT NULL, pid INTEGER, start_time REAL,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS processes_run ON processes(run_id);
"""
START_TIME_SLACK = 0.05   # psutil create_time is computed from boot time + ticks


@attrs.frozen
class SweepReport:
    killed: list[dict[str, Any]]       # processes of dead runs that were (or would be) killed
    skipped: list[dict[str, Any]]      # records whose pid now belongs to something else
    pruned: int                        # records removed
    dead_runs: list[str]
    dry_run: bool = False
    segments: list[str] = attrs.field(factory=list)   # shared-memory blobs of dead runs removed


def _start_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


class ProcessRegistry:
    def __init__(self, path: Path, instance_name: str, run_id: str) -> None:
        self.path = path
        self.instance = instance_name
        self.run_id = run_id
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(private_file(path)), check_same_thread=False,
                                   isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str], *, instance_name: str,
             run_id: str | None = None, register_run: bool = True) -> "ProcessRegistry":
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        reg = cls(directory / "processes.sqlite3", instance_name, run_id or "")
        if register_run and run_id:
            me = psutil.Process()
            with reg._lock:
                reg._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                                (run_id, instance_name, me.pid, me.create_time(), time.time()))
        return reg

    # -- the life of one process ------------------------------------------------------------
    def reserve(self, worker_id: str, argv: list[str]) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO processes (run_id, instance, worker_id, cmdline, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.run_id, self.instance, worker_id, json.dumps(list(argv)), time.time()))
            return int(cur.lastrowid or 0)

    def record(self, row: int, pid: int) -> None:
        start = _start_time(pid)
        with self._lock:
            self._db.execute("UPDATE processes SET pid = ?, start_time = ? WHERE id = ?",
                             (pid, start, row))

    def remove(self, row: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM processes WHERE id = ?", (row,))

    def close(self) -> None:
        with self._lock:
            if self.run_id:
                shm.sweep(shm.run_prefix(self.run_id) + "-")
                self._db.execute("DELETE FROM processes WHERE run_id = ?", (self.run_id,))
                self._db.execute("DELETE FROM runs WHERE run_id = ?", (self.run_id,))
            self._db.close()

    # -- introspection ----------------------------------------------------------------------
    def entries(self, all_instances: bool = False, this_run: bool = False
                ) -> list[dict[str, Any]]:
        """Process records of this instance (every instance's, or only this run's)."""
        where, params = (" WHERE run_id = ?", (self.run_id,)) if this_run else \
            ("", ()) if all_instances else (" WHERE instance = ?", (self.instance,))
        with self._lock:
            rows = self._db.execute(
                "SELECT id, run_id, instance, worker_id, cmdline, pid, start_time FROM processes"
                + where, params).fetchall()
        return [{"id": r[0], "run_id": r[1], "instance": r[2], "worker_id": r[3],
                 "cmdline": json.loads(r[4]), "pid": r[5], "start_time": r[6]} for r in rows]

    def _run_alive(self, run_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT host_pid, host_start FROM runs WHERE run_id = ?",
                                   (run_id,)).fetchone()
        if row is None:
            return False
        start = _start_time(row[0])
        if start is None or abs(start - row[1]) > START_TIME_SLACK:
            return False
        try:
            alive: bool = psutil.Process(row[0]).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False
        return alive

    # -- the sweep --------------------------------------------------------------------------
    def live_runs(self, all_instances: bool = False) -> list[dict[str, Any]]:
        """The runs (of this instance, or of all) whose host is alive: what a sweep leaves."""
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, instance, host_pid, started_at FROM runs"
                + ("" if all_instances else " WHERE instance = ?"),
                () if all_instances else (self.instance,)).fetchall()
        return [{"run_id": r[0], "instance": r[1], "pid": r[2], "started_at": r[3]}
                for r in rows if self._run_alive(r[0])]

    def sweep(self, dry_run: bool = False, all_instances: bool = False) -> SweepReport:
        """Kill leftovers of dead runs of this instance (of every instance with
        ``all_instances``; exact matches only); prune their records and admin sockets.

        Each run owns its records, so several live runs of one instance never touch each
        other: a run is swept only once its host (pid + start time) is gone."""
        killed: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        pruned = 0
        entries = self.entries(all_instances=all_instances)
        runs = {e["run_id"] for e in entries}
        with self._lock:
            runs |= {r[0] for r in self._db.execute(
                "SELECT run_id FROM runs" + ("" if all_instances else " WHERE instance = ?"),
                () if all_instances else (self.instance,))}
        dead = sorted(r for r in runs if r != self.run_id and not self._run_alive(r))
        victims = []
        for entry in entries:
            if entry["run_id"] not in dead:
                continue
            if entry["pid"] and self._matches(entry):
                victims.append(entry)
            elif entry["pid"] and _start_time(entry["pid"]) is not None:
                skipped.append(entry)
            pruned += 1
        segments: list[str] = []
        if not dry_run:
            _kill_groups([v["pid"] for v in victims])
            for run in dead:
                segments += shm.sweep(shm.run_prefix(run) + "-")
                remove_socket(self.path.parent / "admin" / f"{run}.sock")   # admin.socket_path
            with self._lock:
                for run in dead:
                    self._db.execute("DELETE FROM processes WHERE run_id = ?", (run,))
                    self._db.execute("DELETE FROM runs WHERE run_id = ?", (run,))
        killed = victims
        for v in victims:
            log.warning("%s orphaned worker %s (pid %d) of dead run %s",
                        "would kill" if dry_run else "killed", v["worker_id"], v["pid"],
                        v["run_id"])
        if segments:
            log.warning("removed %d shared-memory segments of dead runs", len(segments))
        return SweepReport(killed=killed, skipped=skipped, pruned=pruned, dead_runs=dead,
                           dry_run=dry_run, segments=segments)

    @staticmethod
    def _matches(entry: dict[str, Any]) -> bool:
        try:
            proc = psutil.Process(entry["pid"])
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if entry["start_time"] is None or \
                    abs(proc.create_time() - entry["start_time"]) > START_TIME_SLACK:
                return False
            same: bool = proc.cmdline() == entry["cmdline"]
            return same
        except psutil.Error:
            return False


def _kill_groups(pids: list[int], grace: float = 2.0) -> None:
    """Stop each process group by :func:`~snakepit_bridge.signals.escalation`."""
    if not pids:
        return
    for sigs, wait in escalation(grace):
        for pid in pids:
            for sig in sigs:
                signal_group(pid, sig)
        if wait:
            procs = []
            for pid in pids:
                try:
                    procs.append(psutil.Process(pid))
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=wait)
