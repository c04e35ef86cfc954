"""One writer per table, across processes.

Two processes doing merge_insert on one Lance table can both insert the same
key; an flock on a per-table file serialises writers. The kernel releases the
lock when its holder dies (even by kill -9), so a crash never wedges a table.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from featurestore.errors import WriterLockedError


@contextmanager
def table_writer_lock(lock_dir: Path, table: str, timeout_s: float = 0.0):
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{table}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, table, timeout_s)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _acquire(fd: int, path: Path, table: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = path.read_text().strip() or "unknown"
                raise WriterLockedError(
                    f"table {table!r} is being written by another process (pid {holder}); "
                    "wait for it to finish, or stop it and re-run: the job resumes where it stopped"
                ) from None
            time.sleep(0.1)
