"""Files under ``state_dir`` are private to the user running snakepit, whatever the umask.

    path = private_file(state_dir / "sessions-default.sqlite3")   # 0600, parents 0700
    db = sqlite3.connect(str(path))

The state directory may be shared or world-readable (``~/.local/state`` is often 0755, a
container's volume may be 0777), so snakepit does not refuse it: each file it keeps there is
created 0600 instead, and an existing one (an older run may have written it under a 022 umask)
is narrowed to 0600. The directories snakepit creates are 0700. sqlite gives its ``-wal`` and
``-shm`` files the database file's permission bits, so creating the database first is enough.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_file(path: Path) -> Path:
    """Create ``path`` (and missing parents, 0700) as an owner-only file, or narrow an
    existing one to 0600; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path
