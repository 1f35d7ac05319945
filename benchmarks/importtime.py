"""Start-up cost of a worker process and of ``import snakepit`` (run_all.py's "imports" section).

    ms_to_ready, import_ms = worker_start("pipe")   # one real showcase worker, then stopped
    library_import_ms("import snakepit")            # -X importtime of that statement alone

Import times come from ``python -X importtime``: the sum of the top-level imports' cumulative
microseconds, which is what the interpreter itself reports (CPU contention still shows in it,
but not the time to spawn or to report ready). A worker's ``-X importtime`` lines are read from
a file at the moment its readiness line arrives, so they are exactly the imports before ready.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchlib import stop_process

SHOWCASE = "snakepit_bridge.adapters.showcase:ShowcaseAdapter"
MARK = "-- snakepit-bench: the statement starts here --"
_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")
# the floor: an interpreter that reports ready at once, the way a worker does
FLOOR = "import os, sys; os.write(int(sys.argv[1]), b'{}\\n')"


def top_level_ms(text: str) -> float:
    """Milliseconds of the top-level imports in ``-X importtime`` output (nested imports are
    inside their parent's cumulative time)."""
    return sum(int(m[1]) for m in map(_LINE.match, text.splitlines())
               if m and not m[2].startswith(" ")) / 1000


def library_import_ms(statement: str) -> float:
    """``-X importtime`` of ``statement`` alone (the interpreter's start-up imports excluded)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          f"import sys; sys.stderr.write({MARK!r} + '\\n'); {statement}"],
                         check=True, capture_output=True, text=True, cwd=tempfile.gettempdir()
                         ).stderr
    return top_level_ms(err.split(MARK, 1)[1])


def worker_start(transport: str, timeout: float = 60.0) -> tuple[float, float]:
    """(ms from spawn to the readiness line, ms of imports before it) of one worker process:
    a showcase worker on ``transport`` ("pipe" or "grpc"), or "floor" (a bare interpreter)."""
    r, w = os.pipe()
    host, child = socket.socketpair()
    if transport == "floor":
        argv = ["-c", FLOOR, str(w)]
    else:
        argv = ["-m", "snakepit_bridge", "--adapter", SHOWCASE, "--ready-fd", str(w),
                "--heartbeat-timeout", "0", "--log-level", "warning"]
        if transport == "pipe":
            argv += ["--pipe-fd", str(child.fileno())]
    env: dict[str, Any] = dict(os.environ, SNAKEPIT_SECRET="bench")
    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-X", "importtime", *argv],
                                pass_fds=(w, child.fileno()), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=err, env=env,
                                cwd=tempfile.gettempdir())
        os.close(w)
        child.close()
        try:
            ready = select.select([r], [], [], timeout)[0] and os.read(r, 4096)
            elapsed = (time.perf_counter() - t) * 1000
            err.seek(0)
            imports = top_level_ms(err.read())
            if not ready:
                raise RuntimeError(f"a {transport} worker did not report ready")
        finally:
            os.close(r)
            host.close()
            stop_process(proc)
            assert proc.stdin is not None
            proc.stdin.close()
    return elapsed, imports
