"""Large blobs over shared memory for the pipe transport (host and worker use this module).

A blob of at least ``THRESHOLD`` bytes in an outgoing frame is written to a file in
``/dev/shm`` (tmpfs: memory, not disk) and the frame carries only its name and size
(``Blob.shm_name``/``shm_size``); the receiver maps it (``take``: copy-on-write, so an array
decoded from it costs no copy) and unlinks it when it decodes the message, or ``discard``s it
if nobody will. Names are
``<prefix>-<side>-<n>`` where the prefix is ``snakepit-<run id>`` — so every segment a run
creates is recognisable, and one left behind by a crash is removed: by the host when the
worker that made it exits (``sweep(prefix + "-w<pid>-")``), by the sender when its request
ends, and by the next start's orphan sweep for a host that died (``sweep(prefix + "-")``).
"""

from __future__ import annotations

import itertools
import mmap
import os
from typing import Any

from snakepit_bridge.protocol import SHM_PREFIX_ENV

THRESHOLD = 1 << 20
# Frame kinds whose message has a ``blobs`` map
BLOB_KINDS = frozenset({"execute", "execute_stream", "result", "chunk", "call_host_tool",
                        "set_variable", "variable"})
SHM_DIR = "/dev/shm"
PREFIX_ENV = SHM_PREFIX_ENV


def run_prefix(run_id: str) -> str:
    """The prefix of every segment one host run (and its workers) creates."""
    return f"snakepit-{run_id}"


def peer_prefix(prefix: str, side: str) -> str:
    """What every segment the peer of one pipe may name starts with: its run's prefix and its
    side (``"h"`` for the host's, ``f"w{pid}"`` for one worker's). Empty without a run
    prefix: then no segment is accepted."""
    return f"{prefix}-{side}" if prefix else ""


def available() -> bool:
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


class SegmentError(ValueError):
    """A segment named in a frame could not be read (its sender or request went away)."""


_numbers = itertools.count(1)


class Segments:
    """Creates segments for one side of one pipe: ``<prefix>-<side>-<n>``."""

    def __init__(self, prefix: str, side: str) -> None:
        self.prefix = f"{prefix}-{side}-"
        self.enabled = bool(prefix) and available()

    def export(self, message: Any) -> list[str]:
        """Move the message's large blobs into new segments; returns their names."""
        blobs = getattr(message, "blobs", None)
        if not self.enabled or not blobs:
            return []
        names: list[str] = []
        try:
            for blob in blobs.values():
                if blob.ByteSize() < THRESHOLD:   # sized without reading the data out
                    continue
                data = blob.data   # upb copies on every access: once
                name = f"{self.prefix}{next(_numbers)}"
                _write(name, data)
                names.append(name)
                blob.shm_size = len(data)
                blob.shm_name = name
                blob.data = b""
        except OSError:   # /dev/shm full or gone: what was moved stays, the rest goes inline
            pass
        return names


def take(name: str, size: int) -> mmap.mmap:
    """The segment's bytes, mapped copy-on-write (no copy: a numpy array over it is writable
    and private), and the segment unlinked. Raises SegmentError if it is gone."""
    try:
        fd = os.open(_path(name), os.O_RDONLY)
    except OSError as exc:
        raise SegmentError(f"shared-memory segment {name}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fd).st_size != size:
            raise SegmentError(f"shared-memory segment {name} is {os.fstat(fd).st_size} "
                               f"bytes, expected {size}")
        return mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
        unlink(name)


def _names(message: Any) -> list[str]:
    blobs = getattr(message, "blobs", None)
    return [blob.shm_name for blob in (blobs or {}).values() if blob.shm_name]


def discard(message: Any, peer: str | None = None) -> None:
    """Unlink the segments of a message nobody will decode (its caller went away); with
    ``peer`` (a :func:`peer_prefix`), only those under it."""
    for name in _names(message):
        if peer is None or (peer and name.startswith(peer)):
            unlink(name)


def check_peer(message: Any, peer: str) -> None:
    """Refuse a received message that names a segment outside its sender's prefix ``peer``
    (another run's, another worker's, our own): raises :class:`SegmentError` naming them. The
    foreign segments are left alone; the sender's own are unlinked, as nobody will read them.
    """
    names = _names(message)
    foreign = [n for n in names if not peer or not n.startswith(peer)]
    if foreign:
        discard(message, peer)
        allowed = f"names starting with {peer!r}" if peer else "none (shared memory is off)"
        raise SegmentError(f"the message names shared-memory segment(s) {foreign} that its "
                           f"sender may not name (allowed: {allowed}): refused, left alone")


def _path(name: str) -> str:
    if "/" in name or not name.startswith("snakepit-"):
        raise OSError(f"not a snakepit segment name: {name!r}")
    return os.path.join(SHM_DIR, name)


def _write(name: str, data: bytes) -> None:
    fd = os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        unlink(name)
        raise
    os.close(fd)


def unlink(name: str) -> None:
    try:
        os.unlink(_path(name))
    except OSError:
        pass


def sweep(prefix: str) -> list[str]:
    """Remove every segment whose name starts with ``prefix``; returns the names removed."""
    if not prefix.startswith("snakepit-") or not os.path.isdir(SHM_DIR):
        return []
    removed = []
    for name in os.listdir(SHM_DIR):
        if name.startswith(prefix):
            unlink(name)
            removed.append(name)
    return removed
