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


# Linux's sun_path holds 108 bytes with the NUL; keep a margin.
SOCKET_PATH_MAX = 100


def socket_bind_path(path: Path) -> Path:
    """Where to bind the unix socket that should live at ``path``: ``path`` itself, or — when
    ``path`` is too long for a socket address (a deep state_dir) — a short path in a private
    per-user directory under the system temp dir, which ``path`` then links to
    (:func:`socket_connect_path` follows the link)."""
    if len(os.fsencode(str(path))) <= SOCKET_PATH_MAX:
        return path
    import hashlib
    import stat
    import tempfile
    short = Path(tempfile.gettempdir()) / f"snakepit-{os.getuid()}"
    short.mkdir(mode=DIR_MODE, exist_ok=True)
    st = os.lstat(short)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{short} must be a directory of this user with mode 0700 (it holds "
                      f"sockets whose paths under the state dir are too long)")
    return short / f"{hashlib.sha256(os.fsencode(str(path))).hexdigest()[:24]}.sock"


def socket_connect_path(path: Path) -> str:
    """The address to connect to for the socket at ``path`` (the link's target if it is one)."""
    return os.readlink(path) if os.path.islink(path) else str(path)


def remove_socket(path: Path) -> None:
    """Remove the socket at ``path`` and, if ``path`` links to a short one, that too."""
    for p in {socket_connect_path(path) if os.path.lexists(path) else str(path), str(path)}:
        try:
            os.unlink(p)
        except OSError:
            pass
