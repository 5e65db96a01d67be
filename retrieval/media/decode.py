"""Probe and decode media: the one module that imports PyAV (and reads stills with Pillow).

Every failure to open or decode becomes a MediaError naming the file, so the indexer can skip
one bad file and go on.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from planner.errors import MediaError

# Decoding forward is cheaper than a new seek when the next wanted time is this close.
_DECODE_AHEAD_S = 2.0


@dataclass(frozen=True)
class Probe:
    """What a media file holds; stills have duration 0 and fps 0."""

    duration: float  # seconds
    fps: float
    width: int
    height: int
    has_audio: bool
    n_frames: int  # container's count, or duration * fps when it does not say


def _bad(path: Path, what: str, hint: str = "re-export or remove the file") -> MediaError:
    return MediaError(f"cannot read {path}: {what}", hint=hint)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise _bad(path, "no such file", hint="check the path")
    if path.stat().st_size == 0:
        raise _bad(path, "the file is empty (0 bytes)")


def probe(path: Path) -> Probe:
    """Duration, rate, size and audio of a video (PyAV) or a still (Pillow)."""
    path = Path(path)
    _check_file(path)
    from .library import media_kind

    if media_kind(path.name) == "still":
        img = read_still(path)
        return Probe(0.0, 0.0, int(img.shape[1]), int(img.shape[0]), False, 1)
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _bad(path, "it has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = 0.0
            width = stream.codec_context.width or stream.width
            height = stream.codec_context.height or stream.height
            n_frames = stream.frames or int(round(duration * fps))
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as exc:
        raise _bad(path, f"not a readable video ({exc.strerror or exc})") from exc
    if duration <= 0 or not width or not height:
        raise _bad(path, f"no usable video (duration {duration:.2f} s, size {width}x{height})")
    return Probe(duration, fps, int(width), int(height), has_audio, int(n_frames))


def read_still(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array, turned upright by its EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _bad(path, f"not a readable image ({exc})") from exc


def read_frames(path: Path, times: list[float]) -> list[np.ndarray]:
    """The frame shown at (or first after) each time, as RGB arrays, in the order asked.

    Seeks to the keyframe before each time and decodes forward by timestamp, not frame index,
    so sparse streams (cinepak, mjpeg in avi) land on the right picture. A time past the last
    frame gets the last frame.
    """
    path = Path(path)
    _check_file(path)
    if not times:
        return []
    import av

    order = sorted(range(len(times)), key=lambda i: times[i])
    out: list[np.ndarray | None] = [None] * len(times)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _bad(path, "it has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
            frames = None  # decoding iterator, positioned after `last`
            last = None  # (time, frame) most recently decoded
            for i in order:
                want = max(0.0, float(times[i]))
                if last is not None and last[0] >= want - 1e-6:
                    out[i] = last[1].to_ndarray(format="rgb24")
                    continue
                if frames is None or last is None or want - last[0] > _DECODE_AHEAD_S:
                    frames = _seek(container, stream, want + start)
                    last = None
                found = None
                for frame in frames:
                    t = _frame_time(frame, tb) - start
                    last = (t, frame)
                    if t >= want - 1e-6:
                        found = frame
                        break
                if found is None and last is None:
                    # Seeking went past the end (or the stream cannot seek): decode from the top.
                    frames = _seek(container, stream, None)
                    for frame in frames:
                        last = (_frame_time(frame, tb) - start, frame)
                        if last[0] >= want - 1e-6:
                            break
                if last is None:
                    raise _bad(path, "no frame could be decoded")
                out[i] = last[1].to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise _bad(path, f"decoding failed ({exc.strerror or exc})") from exc
    return [o for o in out if o is not None]


@dataclass(frozen=True)
class StreamInfo:
    """What a one-pass scan needs to know before the first frame."""

    width: int
    height: int
    rate: Fraction  # the stream's guessed frame rate (what PySceneDetect uses)


class _Scalers:
    """The swscale contexts of one decode, one per conversion. ``to_ndarray`` builds a fresh
    context for every frame (about 1.2 ms for the small BGR picture of a 1080p frame, twice the
    conversion itself); a kept ``VideoReformatter`` reuses its context while the sizes and
    formats stay the same, for the very same pixels. One per conversion, because a context
    switched between conversions is rebuilt each time."""

    __slots__ = ("small", "full")

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self.small = VideoReformatter()
        self.full = VideoReformatter()


class DecodedFrame:
    """One decoded picture, converted to pixels only when asked: a scan looks at every frame
    but keeps the decoder's own (YUV) picture for the few it may use later."""

    __slots__ = ("index", "pts", "time_base", "seconds", "_frame", "_scalers")

    def __init__(self, index: int, pts: int, time_base: Fraction, frame,
                 scalers: _Scalers | None = None) -> None:
        self.index = index  # 0, 1, 2, ... in presentation order
        self.pts = pts  # relative to the stream's start, in ``time_base`` units
        self.time_base = time_base
        self.seconds = float(pts * time_base)
        self._frame = frame
        self._scalers = scalers  # shared by the frames of one decode (one thread)

    def bgr(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """BGR uint8 (OpenCV's and PySceneDetect's order), full size or scaled by the decoder's
        scaler to ``width`` x ``height`` by picking the nearest pixel: what OpenCV's linear
        resize of the full frame comes to when shrinking several times, at a third the cost."""
        if width is None or height is None:
            return self._frame.to_ndarray(format="bgr24")
        if self._scalers is None:
            return self._frame.to_ndarray(width=width, height=height, format="bgr24",
                                          interpolation="POINT")
        return self._scalers.small.reformat(self._frame, width, height, "bgr24",
                                            interpolation="POINT").to_ndarray()

    def rgb(self) -> np.ndarray:
        """Full-size RGB uint8, as :func:`read_frames` returns it."""
        if self._scalers is None:
            return self._frame.to_ndarray(format="rgb24")
        return self._scalers.full.reformat(self._frame, format="rgb24").to_ndarray()


def decode_video(path: Path) -> tuple[StreamInfo, Iterator[DecodedFrame]]:
    """Every frame of the first video stream, in order, decoded once with the decoder's own
    threads (frame and slice); MediaError names the file when it cannot be read.

    Times are relative to the stream's start, as in :func:`read_frames` and PySceneDetect.
    The iterator closes the file when it is exhausted or garbage-collected.
    """
    path = Path(path)
    _check_file(path)
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise _bad(path, f"not a readable video ({exc.strerror or exc})") from exc
    try:
        if not container.streams.video:
            raise _bad(path, "it has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.guessed_rate or stream.average_rate or stream.base_rate
        if not rate:
            raise _bad(path, "it has no frame rate")
        info = StreamInfo(int(stream.codec_context.width or stream.width),
                          int(stream.codec_context.height or stream.height),
                          Fraction(int(rate.numerator), int(rate.denominator)))
    except BaseException:
        container.close()
        raise
    return info, _frames(path, container, stream)


def _frames(path: Path, container, stream) -> Iterator[DecodedFrame]:
    import av

    with container:
        start = stream.start_time or 0
        index = 0
        scalers = _Scalers()
        try:
            for frame in container.decode(stream):
                if frame.pts is None or not frame.time_base:
                    continue
                tb = Fraction(int(frame.time_base.numerator), int(frame.time_base.denominator))
                offset = start
                if start and stream.time_base != frame.time_base:
                    offset = int(start * Fraction(int(stream.time_base.numerator),
                                                  int(stream.time_base.denominator)) / tb)
                yield DecodedFrame(index, int(frame.pts) - offset, tb, frame, scalers)
                index += 1
        except av.FFmpegError as exc:
            raise _bad(path, f"decoding failed ({exc.strerror or exc})") from exc


def _seek(container, stream, seconds: float | None):
    """A fresh frame iterator starting at the keyframe before ``seconds`` (None: the start)."""
    import av

    if seconds is None:
        container.seek(0)
    else:
        try:
            container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            container.seek(0)
    return container.decode(stream)


def _frame_time(frame, time_base) -> float:
    if frame.pts is not None and time_base is not None:
        return float(frame.pts * time_base)
    return float(frame.time or 0.0)
