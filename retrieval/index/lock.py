"""One writer per index folder: ``with index_lock(folder, "montage index --engine ray"): ...``.

Two writers on one index (two `montage index` runs, or two Ray clusters whose drivers mount the
same library) would each swap in a state without the other's files. The lock is
``fcntl.flock`` on ``INDEX/index.lock``; the file holds who took it (pid, host, command, start
time) so the refused writer can name the holder. The kernel drops a flock when its holder dies
(even by kill -9), so a lock is never left behind. On shared storage flock goes to the file
server (NFSv4 and Lustre lock across machines; a mount with ``nolock`` does not, which
``montage index`` cannot detect). Readers (search) take no lock: a commit is atomic.

The lock file is never deleted (deleting a locked file would let a third writer lock a new one
beside it); a clean release empties it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from planner.errors import LibraryError

LOCK_FILE = "index.lock"


def _read_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info:
        return "another montage process"
    return (f"{info.get('command', 'a montage command')} (pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, since {info.get('started', '?')})")


@contextmanager
def index_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold the writer lock of the index in ``folder`` for the block, or raise a LibraryError
    naming the process that holds it (at once: an indexing run can take hours)."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LibraryError(f"cannot lock the index in {folder} ({exc.strerror or exc})",
                           hint="set MONTAGE_CACHE_DIR to a writable folder") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise LibraryError(
                f"the index in {folder} is being written by {_read_holder(path)}",
                hint="wait for that run to finish (or stop it); two writers on one index, "
                     "even from two clusters, would lose each other's files") from None
        info = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor drops the flock


__all__ = ["LOCK_FILE", "index_lock"]
