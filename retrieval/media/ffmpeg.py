"""The one module that runs ffmpeg: finding the binary, running it, probing media with it.

Every ffmpeg process is started here, waited for here and killed here if the caller is
interrupted or a time limit passes, so no encoder is ever left running behind a failed call
(a known hurt in moviepy). stderr goes to a temporary file rather than a pipe, so several
processes can run at once without a pipe filling up and blocking one of them.
It lives in retrieval, upstream of both its users (the generator writes clips with it, montage
renders with it), so dependencies keep pointing one way.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from planner.errors import RenderError

from .look import Look

_INSTALL_HINT = (
    "install imageio-ffmpeg (pip install imageio-ffmpeg), put ffmpeg on PATH, "
    "or set MONTAGE_FFMPEG to the ffmpeg binary"
)
_BASE = ["-hide_banner", "-nostdin"]
_TAIL_LINES = 6


def ffmpeg_exe() -> str:
    """The ffmpeg binary: ``$MONTAGE_FFMPEG``, else imageio-ffmpeg's static build, else PATH."""
    env = os.environ.get("MONTAGE_FFMPEG", "").strip()
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise RenderError(f"MONTAGE_FFMPEG={env} is not an executable file", _INSTALL_HINT)
        return env
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and os.path.isfile(exe):
            return exe
    except (ImportError, RuntimeError):
        pass
    found = shutil.which("ffmpeg")
    if found:
        return found
    raise RenderError("no ffmpeg binary found", _INSTALL_HINT)


@dataclass(frozen=True)
class Job:
    """One ffmpeg invocation: its arguments (after the binary) and a phrase for errors."""

    args: tuple[str, ...]
    what: str


class _Running:
    """A started ffmpeg process with its stderr in a temporary file."""

    def __init__(self, job: Job, exe: str, loglevel: str) -> None:
        self.job = job
        self.started = time.monotonic()
        self.err = tempfile.TemporaryFile()
        cmd = [exe, *_BASE, "-v", loglevel, "-y", *job.args]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=self.err)
        except OSError as exc:
            self.err.close()
            raise RenderError(f"{job.what}: cannot start ffmpeg ({exc})", _INSTALL_HINT) from exc

    def stderr_text(self) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.proc.stdout:
            self.proc.stdout.close()
        self.err.close()


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-_TAIL_LINES:]) or "no message from ffmpeg"


_FULL = ("No space left on device", "File too large", "Disk quota exceeded")


def _failure(what: str, code: int, message: str) -> RenderError:
    """ffmpeg's failure as one RenderError; a full disk (or a file size limit, which kills
    ffmpeg with SIGXFSZ) is said plainly, with what to do."""
    if code == -signal.SIGXFSZ or any(m in message for m in _FULL):
        why = "the file size limit was reached" if code == -signal.SIGXFSZ \
            else next(m for m in _FULL if m in message).lower()
        return RenderError(f"{what}: cannot write: {why}",
                           "free some disk space (or raise the limit: ulimit -f) and run again")
    return RenderError(f"{what}: ffmpeg exited with {code}: {_tail(message)}")


def run_ffmpeg(args: list[str], *, what: str, timeout: float | None = None) -> None:
    """Run ``ffmpeg -hide_banner -nostdin -v error -y <args>``; RenderError on failure."""
    run_ffmpeg_jobs([Job(tuple(args), what)], parallel=1, timeout=timeout)


def run_ffmpeg_jobs(
    jobs: Sequence[Job],
    *,
    parallel: int = 1,
    timeout: float | None = None,
    on_done: Callable[[int], None] | None = None,
) -> None:
    """Run ``jobs`` with at most ``parallel`` at once, from this thread.

    Polling from the calling thread (rather than worker threads) means a KeyboardInterrupt or
    a failure lands here, and every process still running is killed before this returns.
    ``on_done(i)`` is called as job ``i`` finishes. The first failure stops the rest.
    """
    exe = ffmpeg_exe()
    pending = list(enumerate(jobs))
    running: dict[int, _Running] = {}
    try:
        while pending or running:
            while pending and len(running) < max(1, parallel):
                i, job = pending.pop(0)
                running[i] = _Running(job, exe, "error")
            finished = [i for i, r in running.items() if r.proc.poll() is not None]
            for i in finished:
                r = running.pop(i)
                code = r.proc.returncode
                message = r.stderr_text()
                r.close()
                if code != 0:
                    raise _failure(r.job.what, code, message)
                if on_done is not None:
                    on_done(i)
            if timeout is not None:
                for r in running.values():
                    if time.monotonic() - r.started > timeout:
                        raise RenderError(f"{r.job.what}: ffmpeg ran longer than {timeout:.0f} s")
            if not finished:
                time.sleep(0.01)
    finally:
        for r in running.values():
            r.kill()


def _capture(args: list[str], *, what: str, loglevel: str = "error",
             timeout: float = 120.0, binary: bool = False) -> tuple[int, "str | bytes", str]:
    """Run ffmpeg and return (exit code, stdout, stderr); for probes whose output is the answer."""
    r = _Running(Job(tuple(args), what), ffmpeg_exe(), loglevel)
    try:
        out, _ = r.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        r.kill()
        raise RenderError(f"{what}: ffmpeg ran longer than {timeout:.0f} s") from exc
    except BaseException:
        r.kill()
        raise
    err = r.stderr_text()
    r.close()
    return r.proc.returncode, out if binary else out.decode("utf-8", "replace"), err


def capture_ffmpeg(args: list[str], *, what: str, loglevel: str = "info",
                   timeout: float = 600.0, binary: bool = False) -> tuple["str | bytes", str]:
    """Run ffmpeg for what it prints (an analysis filter's report; with ``binary``, raw
    samples on stdout as bytes); returns (stdout, stderr); RenderError with ffmpeg's last lines
    when it fails."""
    code, out, err = _capture(args, what=what, loglevel=loglevel, timeout=timeout, binary=binary)
    if code != 0:
        raise RenderError(f"{what}: ffmpeg exited with {code}: {_tail(err)}")
    return out, err


def file_arg(path: Path) -> str:
    """A path as an ffmpeg URL: ``file:`` + absolute path, so names starting with '-' or
    holding ':' are never read as options or protocols."""
    return "file:" + str(Path(path).absolute())


@dataclass(frozen=True)
class MediaInfo:
    """What the renderer needs to know about one input before encoding it."""

    width: int  # a still's: upright, as montage reads it
    height: int
    has_audio: bool
    look: Look = Look()  # a video's: what showing it right takes (retrieval.media.look)


_VIDEO_RE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?[ ,](\d+)x(\d+)(?=[ ,]|$)", re.M)
_AUDIO_RE = re.compile(r"Stream #\d+:\d+.*?: Audio: ")


def media_info(path: Path, kind: str = "video") -> MediaInfo:
    """Ask ffmpeg what streams ``path`` holds (no ffprobe in the static build) and PyAV how
    to show it (:func:`retrieval.media.decode.look_of`); a still (``kind`` "still") is
    measured as montage reads it (upright; RAW and HEIF too). Remembered per file version,
    since every recut renders from the same sources."""
    st = Path(path).stat()
    return _probe(str(path), st.st_size, st.st_mtime_ns, kind)


@lru_cache(maxsize=4096)
def _probe(path: str, size: int, mtime_ns: int, kind: str = "video") -> MediaInfo:
    from planner.errors import MediaError

    from .decode import look_of, probe

    hint = "check the file opens in a player, or re-index the library without it"
    if kind == "still":
        try:
            still = probe(Path(path), "still")
        except MediaError as exc:
            raise RenderError(f"{path}: {exc.message}", hint) from exc
        return MediaInfo(still.width, still.height, False)
    code, _, err = _capture(["-i", file_arg(path)], what=f"probing {path}", loglevel="info")
    video = _VIDEO_RE.search(err)
    if video is None:
        raise RenderError(f"{path}: not a readable image or video: {_tail(err)}", hint)
    try:
        look = look_of(Path(path))
    except MediaError as exc:
        raise RenderError(f"{path}: {exc.message}", hint) from exc
    return MediaInfo(int(video.group(1)), int(video.group(2)), bool(_AUDIO_RE.search(err)), look)


def count_video_frames(path: Path) -> int:
    """Frames in the first video stream, counted from packets (``-c copy``: no decoding)."""
    code, out, err = _capture(
        ["-i", file_arg(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"],
        what=f"counting frames of {path}",
    )
    if code != 0:
        raise RenderError(f"counting frames of {path}: {_tail(err)}")
    return sum(1 for line in out.splitlines() if line.startswith("0,"))
