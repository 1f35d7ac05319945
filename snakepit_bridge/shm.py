"""Large blobs over shared memory for the pipe transport (host and worker use this module).

A blob of at least ``THRESHOLD`` bytes in an outgoing frame is written to a file in
``/dev/shm`` (tmpfs: memory, not disk; ``SNAKEPIT_SHM_DIR`` names another) and the frame
carries only its name and size (``Blob.shm_name``/``shm_size``); the receiver maps it
(``take``: copy-on-write, so an array decoded from it costs no copy) and unlinks it when it
decodes the message, or ``discard``s it if nobody will.

The sender copies the payload once, from the caller's own buffer into the segment (``write``):
the encoder hands large buffers to a sink instead of making ``Blob.data``. The worker's sink
(``Segments``) writes the segment at once; the host's (``Deferred``) keeps the buffer under a
``pending-`` token until a transport sends the message — the pipe then writes it to a segment
(``Segments.export``), gRPC copies it into ``Blob.data`` (``materialize``):

    data, blobs = serialization.encode(args, large=Deferred(trio.lowlevel.current_task()))
    segments.export(request)     # pipe: one copy, array buffer -> segment

Segment space is reserved before the copy (``posix_fallocate``), so a full tmpfs is a
:class:`SpaceError` naming the directory and the size, never a SIGBUS, and leaves no file.
Names are
``<prefix>-<side>-<n>`` where the prefix is ``snakepit-<run id>`` — so every segment a run
creates is recognisable, and one left behind by a crash is removed: by the host when the
worker that made it exits (``sweep(prefix + "-w<pid>-")``), by the sender when its request
ends, and by the next start's orphan sweep for a host that died (``sweep(prefix + "-")``).
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import sys
import weakref
from typing import Any

from snakepit_bridge.protocol import SHM_DIR_ENV, SHM_PREFIX_ENV

THRESHOLD = 1 << 20
# Frame kinds whose message has a ``blobs`` map
BLOB_KINDS = frozenset({"execute", "execute_stream", "result", "chunk", "call_host_tool",
                        "set_variable", "variable"})
# Read once: host and workers must agree (workers inherit the host's environment).
SHM_DIR = os.environ.get(SHM_DIR_ENV) or "/dev/shm"
PREFIX_ENV = SHM_PREFIX_ENV
#: ``Blob.shm_name`` of a buffer kept in this process until its message is sent (``Deferred``)
PENDING = "pending-"


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


class SpaceError(OSError):
    """The segment directory has no room for a segment (tmpfs full): nothing was left there."""


_numbers = itertools.count(1)
# token -> (the caller's buffer: bytes-like or numpy array, its release with the owner task)
_pending: dict[str, tuple[Any, "weakref.finalize[Any, Any]"]] = {}


class Deferred:
    """The host's sink for large buffers (``serialization.encode(large=...)``): each is kept
    under a ``pending-`` token until its message is sent (``Segments.export``,
    ``materialize``), or until ``owner`` — the task that will send it — is gone (a call that
    failed before it was sent must not keep the caller's array alive)."""

    threshold = THRESHOLD

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def put(self, source: Any, size: int) -> str:
        token = f"{PENDING}{next(_numbers)}"
        _pending[token] = (source, weakref.finalize(self._owner, _pending.pop, token, None))
        return token

    def drop(self, name: str) -> None:
        entry = _pending.pop(name, None)
        if entry is not None:
            entry[1].detach()


def _claim(token: str) -> Any:
    try:
        source, release = _pending.pop(token)
    except KeyError:
        raise SegmentError(f"blob {token} is no longer held (its message was sent already, "
                           f"or the task that encoded it has ended)") from None
    release.detach()   # a long-lived task must not collect one finalizer per call it made
    return source


def claim_pending(blob: Any) -> Any:
    """The buffer behind a ``pending-`` blob of this process (decoding a message that was never
    sent: in-process fakes), taken from the table."""
    return _claim(blob.shm_name)


def pending_size(message: Any) -> int:
    """Bytes of the message's blobs still held as ``pending-`` buffers (not in its ByteSize)."""
    return sum(blob.shm_size for blob in (getattr(message, "blobs", None) or {}).values()
               if blob.shm_name.startswith(PENDING))


def materialize(message: Any) -> None:
    """Put the message's ``pending-`` buffers into ``Blob.data`` (a transport without shared
    memory: gRPC)."""
    for blob in (getattr(message, "blobs", None) or {}).values():
        if blob.shm_name.startswith(PENDING):
            _inline(blob, _claim(blob.shm_name))


def _inline(blob: Any, source: Any) -> None:
    data = source if isinstance(source, bytes) else _bytes_of(source)
    blob.data = data if isinstance(data, bytes) else data.tobytes()
    blob.shm_name, blob.shm_size = "", 0


class Segments:
    """Creates segments for one side of one pipe: ``<prefix>-<side>-<n>``. Also the worker's
    sink for ``serialization.encode``: ``put`` writes a buffer to a new segment at once."""

    threshold = THRESHOLD

    def __init__(self, prefix: str, side: str) -> None:
        self.prefix = f"{prefix}-{side}-"
        self.enabled = bool(prefix) and available()

    def put(self, source: Any, size: int) -> str:
        name = f"{self.prefix}{next(_numbers)}"
        write(name, source, size)
        return name

    def drop(self, name: str) -> None:
        unlink(name)

    def export(self, message: Any) -> list[str]:
        """Move the message's large blobs into new segments; returns their names. A
        ``pending-`` buffer is copied once, from its own memory into the segment (or into
        ``Blob.data`` when shared memory is off). Raises :class:`SpaceError` when the segment
        directory is full, having removed the segments this call made."""
        blobs = getattr(message, "blobs", None)
        if not blobs:
            return []
        names: list[str] = []
        try:
            for blob in blobs.values():
                if blob.shm_name.startswith(PENDING):
                    source = _claim(blob.shm_name)
                    if not self.enabled:
                        _inline(blob, source)
                        continue
                    blob.shm_name = self.put(source, blob.shm_size)
                    names.append(blob.shm_name)
                elif not self.enabled or blob.shm_name or blob.ByteSize() < THRESHOLD:
                    continue
                else:   # an inline blob made without a sink (a host handler's answer)
                    data = blob.data   # upb copies on every access: once
                    blob.shm_name = self.put(data, len(data))
                    names.append(blob.shm_name)
                    blob.shm_size = len(data)
                    blob.data = b""
        except BaseException:
            for name in names:
                unlink(name)
            raise
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


def nbytes(source: Any) -> int:
    """The payload size of a bytes-like object or numpy array."""
    size = getattr(source, "nbytes", None)   # numpy arrays, memoryviews
    return int(size) if size is not None else len(source)


def _bytes_of(source: Any) -> Any:
    """``source``'s bytes in C order, as a flat byte memoryview where that costs no copy."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(source, np.ndarray):
        if source.flags.c_contiguous:   # reshape(-1) of a 0-d array: one element, a view
            return memoryview(source.reshape(-1).view(np.uint8))
        return source.tobytes()
    view = memoryview(source)
    return view.cast("B") if view.c_contiguous else view.tobytes()


def write(name: str, source: Any, size: int) -> None:
    """A new segment ``name`` holding ``source``'s ``size`` bytes (C order), copied once from
    the source's own memory. The space is reserved first, so a full directory raises
    :class:`SpaceError` (naming it and the size) before anything is copied, and a mapped
    write can never meet a missing page (SIGBUS). On any failure the file is removed."""
    fd = os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        reserved = _reserve(fd, size)
        np = sys.modules.get("numpy")
        if reserved and np is not None and isinstance(source, np.ndarray) and \
                not source.flags.c_contiguous:
            # strided (Fortran order, a slice): copied element-wise into the mapped segment,
            # not first into a contiguous temporary (unreserved, a mapped write could SIGBUS)
            with mmap.mmap(fd, size) as mapped:
                target = np.ndarray(source.shape, source.dtype, buffer=mapped)
                np.copyto(target, source)
                del target   # the mapping cannot close while an array still exports it
        else:
            view = _bytes_of(source)
            done = 0
            while done < size:
                done += os.pwrite(fd, view[done:], done)
    except BaseException as exc:
        os.close(fd)
        unlink(name)
        if isinstance(exc, OSError) and not isinstance(exc, SpaceError) and \
                exc.errno == errno.ENOSPC:   # a filesystem that could not reserve
            raise space_error(size, exc) from None
        raise
    os.close(fd)


def _reserve(fd: int, size: int) -> bool:
    """Allocate the segment's space now; False where the filesystem cannot (sized only)."""
    try:
        os.posix_fallocate(fd, 0, size)
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise space_error(size, exc) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
    os.ftruncate(fd, size)   # a filesystem without fallocate: size it, write as we go
    return False


def space_error(size: int, exc: OSError | None = None) -> SpaceError:
    """The error for a segment of ``size`` bytes that does not fit in ``SHM_DIR``."""
    try:
        stat = os.statvfs(SHM_DIR)
        free = f"{stat.f_bavail * stat.f_frsize} of {stat.f_blocks * stat.f_frsize} bytes free"
    except OSError:
        free = "free space unknown"
    return SpaceError(exc.errno if exc else errno.ENOSPC,
                      f"{SHM_DIR} has no room for a {size}-byte shared-memory segment ({free}): "
                      f"free memory there, make it bigger, or set {SHM_DIR_ENV} to a larger "
                      f"tmpfs")


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
