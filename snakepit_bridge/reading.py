"""Reading the pipe: a role one thread holds at a time (leader/follower).

    reading = Reading(sock, route, ended)
    reading.start()                      # a thread takes the role and reads frames
    reading.run_here(fn, *args)          # (from route) run fn on the reading thread
    reading.hand_over()                  # (inside fn) it is about to block: another reads
    reading.close()

The reading thread parses frames and hands each to ``route``. ``route`` may run a short sync
tool right there (``run_here``): no thread hand-off, which costs more than the tool itself for
small calls (measured 20-40 µs of CPU per call). While it does, nobody reads the pipe, so a
watchdog thread, ticking only while such tools run, hands the role over when one has run for
between one and two ticks (``HANDOVER_AFTER``): a waiting follower (or a new thread) takes the
buffer and reads on, so cancels, heartbeats, credit and the answers to the tool's own host
calls still arrive; the tool's thread becomes a follower once it is done. A tool that is about
to wait for the host calls ``hand_over`` itself. ``ended`` runs once, on the thread that sees
the end of the pipe (EOF, an error, a frame that does not parse or is over the limit).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any, Callable

from google.protobuf.message import DecodeError

from snakepit_bridge.frames import HEADER
from snakepit_bridge.proto import bridge_pb2 as pb
from snakepit_bridge.protocol import MAX_FRAME

log = logging.getLogger("snakepit_bridge.pipe")

HANDOVER_AFTER = 0.01   # s: a tool on the reading thread this long (up to twice) gives it up
IDLE_TICKS = 50          # the watchdog sleeps after this many ticks without such a tool


class Reading:
    """The reading role; see the module docstring."""

    def __init__(self, sock: Any, route: Callable[[pb.Frame], None],
                 ended: Callable[[], None], context: contextvars.Context) -> None:
        self._sock, self._route, self._ended = sock, route, ended
        self._context = context   # each reading thread runs in a copy (tools run there)
        self._buf = bytearray()
        self._need = HEADER.size        # bytes of the frame being read
        self._lock = threading.Lock()
        self._vacant = threading.Condition(self._lock)   # followers wait for the role
        self._tick = threading.Condition(self._lock)     # the watchdog's sleep
        self._owner: threading.Thread | None = None      # None: vacant
        self._followers = 0
        self._busy = 0      # the run number of the tool on the reading thread; 0: none
        self._busy_thread: threading.Thread | None = None   # the thread running it
        self._runs = 0
        self._watchdog: threading.Thread | None = None
        self._watch_idle = False
        self._closed = False

    def start(self) -> None:
        thread = self._thread(self._main)
        with self._lock:
            self._owner = thread
        thread.start()

    def close(self) -> None:
        """Followers and the watchdog exit (the reading thread ends with the pipe)."""
        with self._lock:
            self._closed = True
            self._vacant.notify_all()
            self._tick.notify()

    # -- on the reading thread ---------------------------------------------------------------
    def run_here(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on this, the reading thread; the role passes to another thread
        if it runs long (module docstring)."""
        with self._lock:
            self._runs += 1
            self._busy = run = self._runs
            self._busy_thread = threading.current_thread()
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                                  name="snakepit-pipe-watchdog")
                self._watchdog.start()
            elif self._watch_idle:
                self._watch_idle = False
                self._tick.notify()
        try:
            fn(*args)
        finally:
            with self._lock:
                if self._busy == run:
                    self._busy, self._busy_thread = 0, None

    def hand_over(self) -> None:
        """If this thread holds the role and runs a tool (``run_here``), give the role up now:
        the tool is about to wait for something only the pipe brings."""
        with self._lock:
            if self._busy and self._owner is threading.current_thread():
                self._vacate()

    # -- the role ---------------------------------------------------------------------------
    def _main(self) -> None:
        while True:
            if self._read():
                with self._lock:
                    self._closed = True
                    self._vacant.notify_all()
                    self._tick.notify()
                self._ended()
                return
            if not self._follow():
                return

    def _follow(self) -> bool:
        """Wait until the role is vacant and take it; False once the pipe has ended."""
        me = threading.current_thread()
        with self._lock:
            self._followers += 1
            try:
                while self._owner is not None and not self._closed:
                    self._vacant.wait()
                if self._closed:
                    return False
                self._owner = me
                return True
            finally:
                self._followers -= 1

    def _vacate(self) -> None:
        """(lock held) The role is free: a follower takes it, or a new thread does."""
        self._owner = None
        if self._followers:
            self._vacant.notify()
        else:
            self._thread(self._take_over).start()

    def _thread(self, target: Callable[[], None]) -> threading.Thread:
        return threading.Thread(target=self._context.copy().run, args=(target,), daemon=True,
                                name="snakepit-pipe-reader")

    def _take_over(self) -> None:
        if self._follow():
            self._main()

    def _read(self) -> bool:
        """Read and route frames while this thread holds the role. True: the pipe has ended;
        False: the role went to another thread (during a tool run here)."""
        me = threading.current_thread()
        buf = self._buf
        try:
            while True:
                while len(buf) >= HEADER.size:
                    (size,) = HEADER.unpack_from(buf)
                    if size > MAX_FRAME:
                        log.error("frame of %d bytes exceeds the %d limit: closing the pipe",
                                  size, MAX_FRAME)
                        return True
                    need = HEADER.size + size
                    if len(buf) < need:
                        self._need = need
                        break
                    try:
                        with memoryview(buf) as view:
                            frame = pb.Frame.FromString(view[HEADER.size:need])
                    except DecodeError as exc:
                        log.error("malformed frame from the host (%s): closing the pipe", exc)
                        return True
                    del buf[:need]
                    self._need = HEADER.size
                    self._route(frame)
                    # the role changes hands only during run_here, under the lock
                    if self._owner is not me:
                        return False
                data = self._sock.recv(max(1 << 16, min(self._need - len(buf), 1 << 24)))
                if not data:
                    return True   # the host closed its end: it is gone
                buf += data
        except OSError:
            return True   # closed under us (stop), or the host is gone

    def _watch(self) -> None:
        """Hand the role over from a tool that has run here for a whole tick; sleep when no
        tool has run here for IDLE_TICKS ticks."""
        with self._lock:
            seen, runs, quiet = 0, 0, 0
            while not self._closed:
                if self._busy and self._busy == seen and self._owner is self._busy_thread:
                    self._vacate()
                quiet = quiet + 1 if self._runs == runs else 0
                if quiet > IDLE_TICKS:
                    self._watch_idle = True
                    self._tick.wait()
                    quiet = 0
                seen, runs = self._busy, self._runs
                self._tick.wait(HANDOVER_AFTER)
