"""One server per file: the SQLite database of --db, and the Redis store's outbox beside it."""
from __future__ import annotations

import errno
import os
from typing import Type

from thebutton.store import StoreError


def hold_exclusively(path: str, error: Type[StoreError] = StoreError) -> int:
    """Lock ``path`` for this process alone (flock); the open descriptor holds it, the kernel frees it on exit.

    Two servers on one file would each keep their own idea of the count. flock locks are
    apart from the POSIX record locks SQLite takes on the same file, so the two never
    meet; the descriptor stays open until its owner closes it, since closing any descriptor of the
    file would drop SQLite's own locks. A missing file is created empty (a fresh database).
    """
    try:
        import fcntl
    except ImportError:  # not on this platform (Windows): no lock, as before
        return -1
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as e:
        raise error(f"{path}: cannot open the database: {e.strerror}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise error(f"{path}: another server is using this database (one server per file; "
                        "stop the other one, or give this one its own --db)") from None
        raise error(f"{path}: cannot lock the database: {e.strerror}") from e
    return fd


def release(fd: int) -> None:
    """Let go of a lock hold_exclusively took (closing its descriptor)."""
    if fd >= 0:
        os.close(fd)
