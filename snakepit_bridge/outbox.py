"""Stream chunks from tool threads to the pipe, written by one flusher thread.

    outbox = Outbox(lock, write, failed)   # lock: the inline runner's
    out = Out(fid)                         # one per stream
    with lock:
        outbox.put(out, entry)             # a tool thread (or the deadline timer)
    with lock:
        outbox.wait_sent(out)              # the stream's thread, before it lets go
    outbox.close()

A tool thread that pulls a generator only appends what it pulled (plain chunks' JSON goes
straight into one array, a :class:`Run`: held as separate ``bytes`` objects, orjson's output
costs ~3 µs each, measured, against ~0.1 µs when it is dropped at once); the flusher takes
everything pending for a stream when it runs and hands it to ``write`` in one go. So a chunk
never waits for the next one (an idle flusher is woken by the first chunk), and a fast
generator's chunks leave in few frames (they pile up while the flusher waits for the
interpreter lock or writes): the batching costs no timer and no guess. Entries of one stream
are written in the order they were put, the final one last; nothing is put after a stream's
final entry.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from snakepit_bridge.proto import bridge_pb2 as pb

# write(fid, first_chunk_id, entries): write a stream's entries, each a Run or a ToolChunk
# (any thread; may block)
Write = Callable[[int, int, list[Any]], None]
# a Run holds at most about this many bytes of JSON (one frame's worth)
RUN_BYTES = 256 * 1024


class Run:
    """Consecutive plain chunks (data only): their JSON as one array, and how many."""

    __slots__ = ("json", "count")

    def __init__(self) -> None:
        self.json = bytearray(b"[")
        self.count = 0

    def add(self, data: bytes) -> None:
        self.json += data
        self.json += b","
        self.count += 1

    def array(self) -> bytes:
        """The JSON array (the Run is spent)."""
        self.json[-1:] = b"]"
        return bytes(self.json)
# failed(fid, exc): writing them raised; answer the stream with an error frame
Failed = Callable[[int, Exception], None]


class Out:
    """One stream's entries not yet written, and where its chunk ids stand."""

    __slots__ = ("fid", "entries", "pending", "next_id", "queued", "writing", "ended",
                 "failed")

    def __init__(self, fid: int) -> None:
        self.fid = fid
        self.entries: list[Any] = []
        self.pending = 0          # chunks in entries
        self.next_id = 1          # the chunk id of the next entry put
        self.queued = False       # in the flusher's queue
        self.writing = False      # the flusher is writing some of its entries now
        self.ended = False        # its final entry has been put: nothing more comes
        self.failed = False       # a write failed: the stream was answered with an error


class Outbox:
    """The flusher and its queue of streams with entries; see the module docstring. Every
    method is called with ``lock`` held (the lock of the threads that put)."""

    def __init__(self, lock: threading.Lock, write: Write, failed: Failed,
                 context: Any = None) -> None:
        self._lock, self._write, self._failed = lock, write, failed
        self._context = context
        self._ready: collections.deque[Out] = collections.deque()
        self._wake = threading.Condition(lock)
        self._sent = threading.Condition(lock)
        self._idle = False        # the flusher waits on _wake
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, out: Out, entry: Any, *, final: bool = False) -> None:
        """(lock held) Queue ``entry`` as ``out``'s next chunk: ``bytes`` (a plain chunk's
        JSON) or a ``ToolChunk``; ``final``: its last. Dropped once a write of the stream
        failed."""
        if out.failed:
            return
        if type(entry) is bytes and len(entry) >= RUN_BYTES:   # alone, without a copy
            out.entries.append(pb.ToolChunk(data_json=entry))
        elif type(entry) is bytes:
            run = out.entries[-1] if out.entries else None
            if type(run) is not Run or len(run.json) >= RUN_BYTES:
                run = Run()
                out.entries.append(run)
            run.add(entry)
        else:
            out.entries.append(entry)
        out.pending += 1
        out.ended = out.ended or final
        if not out.queued:
            out.queued = True
            self._ready.append(out)
            if self._thread is None:
                target = self._run if self._context is None else \
                    (lambda: self._context.copy().run(self._run))
                self._thread = threading.Thread(target=target, name="snakepit-stream-out",
                                                daemon=True)
                self._thread.start()
            elif self._idle:
                self._idle = False
                self._wake.notify()

    def write_now(self, out: Out) -> None:
        """(lock held) Write what is pending for ``out`` on this thread, unless the flusher
        is writing some of it now (then it takes the rest next). A producer that keeps the
        interpreter lock would otherwise hold its chunks until the flusher gets the lock
        (up to the switch interval, 5 ms) and run out of credit meanwhile."""
        if out.writing or not out.queued:
            return
        self._ready.remove(out)
        out.queued = False
        self._write_out(out)

    def wait_sent(self, out: Out) -> None:
        """(lock held) Until everything put for ``out`` has been written (or dropped: the
        pipe is closed)."""
        self._sent.wait_for(lambda: not out.queued and not out.writing)

    def close(self) -> None:
        """(lock held) The flusher exits once nothing is left to write."""
        self._closed = True
        self._wake.notify()

    def _run(self) -> None:
        with self._lock:
            while True:
                while not self._ready:
                    if self._closed:
                        return
                    self._idle = True
                    self._wake.wait()
                out = self._ready.popleft()
                out.queued = False
                self._write_out(out)

    def _write_out(self, out: Out) -> None:
        """(lock held; released while writing) Write ``out``'s pending entries."""
        entries, out.entries = out.entries, []
        first = out.next_id
        out.next_id += out.pending
        out.pending = 0
        if not entries:   # dropped after a failed write
            self._sent.notify_all()
            return
        out.writing = True
        self._lock.release()   # never write while holding the lock
        try:
            self._write(out.fid, first, entries)
        except ConnectionError:
            pass   # the host is gone: nobody to tell
        except Exception as exc:   # a frame over the limit, /dev/shm full, ...
            with self._lock:   # what is still to come of it is not written
                out.failed, out.ended = True, True
                out.entries.clear()
                out.pending = 0
            self._failed(out.fid, exc)
        finally:
            self._lock.acquire()
            out.writing = False
            self._sent.notify_all()
