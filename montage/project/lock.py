"""One writer per project folder: ``with project_lock(project, "montage make"): ...``.

Two writers on one project (two `montage make`, `make` and `watch`, the studio and `make`)
would interleave their cut numbers, history folders and state. The lock is ``fcntl.flock`` on
``PROJECT/montage.lock``, which holds who took it (pid, host, command, start time) so the
second writer can say whom it is waiting for. The kernel drops a flock when its holder dies
(even by kill -9), so a lock is never left behind; the file's text then names a process that
ended without clearing it, and the next holder says it took over a stale lock.

The lock is re-entrant within one process: the studio holds its project's lock for the life of
its server and runs cuts, reverts and pins inside it, from other threads. A module registry
counts the holds per resolved project path; the file lock goes when the count drops to 0.
Threads of one process are not kept apart by it (the holder of the outer lock orders them).

The lock file is never deleted (deleting a locked file would let a third process lock a new one
beside it); a clean release empties it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from planner.errors import ProjectError

LOCK_FILE = "montage.lock"
POLL_S = 0.05
GRACE_S = 0.3  # a refused non-waiting lock is retried this long (another's short probe)

logger = logging.getLogger(__name__)


@dataclass
class _Held:
    fd: int
    count: int
    holder: str  # the description written in the file


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def lock_path(project: Path) -> Path:
    return Path(project) / LOCK_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _read_info(path: Path) -> dict | None:
    """The holder recorded in the lock file; None when empty or unreadable."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        info = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict) -> str:
    return (f"{info.get('command', 'a montage command')} (pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, since {info.get('started', '?')})")


def _gone(info: dict) -> bool:
    """True when the recorded holder ran on this host and is no longer running."""
    pid = info.get("pid")
    return (info.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and not _pid_alive(pid))


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive flock on ``path``, or None when another holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:  # the file we locked must still be the one at the path (not deleted by hand)
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _take(key: Path, command: str) -> bool:
    """One attempt, under the registry guard: join this process's hold or take the file lock."""
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return True
        path = lock_path(key)
        try:
            key.mkdir(parents=True, exist_ok=True)
            fd = _try_lock(path)
        except OSError as exc:
            raise ProjectError(f"cannot lock the project {key} ({exc.strerror or exc})",
                               "check that the project folder is writable") from None
        if fd is None:
            return False
        stale = _read_info(path)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        text = json.dumps(info) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        _held[key] = _Held(fd, 1, _describe(info))
    if stale:
        why = (f"pid {stale.get('pid')} is no longer running" if _gone(stale)
               else "it ended without releasing it")
        logger.warning("%s: took over a stale lock left by %s: %s", key, _describe(stale), why)
    return True


def _release(key: Path) -> None:
    with _guard:
        held = _held[key]
        held.count -= 1
        if held.count:
            return
        del _held[key]
        try:
            os.ftruncate(held.fd, 0)  # a clean release leaves an empty file: not stale
        finally:
            os.close(held.fd)  # closing drops the flock


def _refusal(key: Path, waited: float) -> ProjectError:
    info = _read_info(lock_path(key))
    who = _describe(info) if info else "another montage process (starting up)"
    message = f"the project {key} is in use by {who}"
    hint = ("wait for it to finish, or stop it; montage make --wait SECONDS waits for it"
            if not waited else "it is still running: try again when it has finished, or stop it")
    if waited:
        message += f"; waited {waited:g} s"
    if info and _gone(info):
        message += (f"; pid {info.get('pid')} is no longer running, but a process it started "
                    f"still holds {lock_path(key)}")
        hint = f"stop the leftover process (fuser {lock_path(key)} names it)"
    return ProjectError(message, hint)


@contextmanager
def project_lock(project: Path, command: str, *, wait: bool = False,
                 timeout: float = 60.0) -> Iterator[None]:
    """Hold ``project``'s writer lock for the block; ``command`` is what others are told.

    Another process's lock is a ProjectError naming it, at once, or (``wait=True``) after
    ``timeout`` seconds of waiting for it. Within this process the lock is re-entrant.
    """
    key = Path(project).resolve()
    started = time.monotonic()
    limit = timeout if wait else GRACE_S
    while not _take(key, command):
        if time.monotonic() - started >= limit:
            raise _refusal(key, round(timeout, 1) if wait else 0)
        time.sleep(POLL_S)
    try:
        yield
    finally:
        _release(key)


def lock_holder(project: Path) -> str | None:
    """Who holds ``project``'s lock (for messages), or None when nobody does."""
    key = Path(project).resolve()
    with _guard:
        held = _held.get(key)
        if held is not None:
            return held.holder
        path = lock_path(key)
        if not path.is_file():
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # free: a shared probe got it (dropped at close)
        except OSError:
            info = _read_info(path)
            return _describe(info) if info else "another montage process (starting up)"
        finally:
            os.close(fd)
