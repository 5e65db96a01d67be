"""Probe and decode media: the one module that imports PyAV (pictures are read in ``stills``).

Every failure to open or decode becomes a :class:`retrieval.media.library.SkippedMedia` naming
the file and why (not media, audio only, unreadable, zero length, unsupported codec), so the
indexer can skip one bad file, say why, and go on. Frames come out as the camera meant them
(:mod:`retrieval.media.look`: deinterlaced, upright, HDR mapped to SDR), through the same
ffmpeg filters the render runs.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .library import (AUDIO_ONLY, NOT_MEDIA, UNREADABLE, UNSUPPORTED, ZERO_LENGTH, SkippedMedia,
                      is_raw, media_kind)
from .look import Look, decide, display_matrix, seek_back, turned_size

# Decoding forward is cheaper than a new seek when the next wanted time is this close.
_DECODE_AHEAD_S = 2.0
# ffmpeg demuxers that draw text files as pictures (ANSI art): a .nfo is a note, not footage
_TEXT_DEMUXERS = frozenset({"tty", "bin", "adf", "idf", "xbin"})


@dataclass(frozen=True)
class Probe:
    """What a media file holds; stills have duration 0 and fps 0. Sizes are upright."""

    duration: float  # seconds
    fps: float
    width: int
    height: int
    has_audio: bool
    n_frames: int  # container's count, or duration * fps when it does not say
    look: Look = field(default_factory=Look)  # what showing it right takes (videos)


def _bad(path: Path, what: str, hint: str = "re-export or remove the file",
         why: str = UNREADABLE) -> SkippedMedia:
    return SkippedMedia(f"cannot read {path}: {what}", hint=hint, why=why)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise _bad(path, "no such file", hint="check the path")
    if path.stat().st_size == 0:
        raise _bad(path, "the file is empty (0 bytes)", why=ZERO_LENGTH)


def sniff(path: Path) -> str:
    """"video" or "still", by the file's content (an animated GIF is a video); SkippedMedia
    saying why when it is neither (not media, audio only, unsupported codec, ...)."""
    from .stills import identify

    path = Path(path)
    _check_file(path)
    if is_raw(path.name):
        return "still"
    found = identify(path)
    if found is not None:
        fmt, frames = found
        return "video" if fmt == "GIF" and frames > 1 else "still"
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise _bad(path, "not a picture, a video or a sound ffmpeg knows", why=NOT_MEDIA,
                   hint="nothing to do: it is not footage") from exc
    with container:
        if container.format.name in _TEXT_DEMUXERS:
            raise _bad(path, "a text file", why=NOT_MEDIA, hint="nothing to do: it is not footage")
        _video_stream(path, container)
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            return "still"
    return "video"


def _video_stream(path: Path, container):
    """The first video stream, or SkippedMedia saying what the file holds instead."""
    if not container.streams.video:
        if container.streams.audio:
            raise _bad(path, "it holds sound but no picture", why=AUDIO_ONLY,
                       hint="use it as --music, or keep it out of the footage folder")
        raise _bad(path, "it holds no picture or sound stream", why=NOT_MEDIA,
                   hint="nothing to do: it is not footage")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        tag = ""
        try:
            tag = f" ({stream.codec_tag})" if getattr(stream, "codec_tag", "") else ""
        except (AttributeError, ValueError):
            pass
        raise _bad(path, f"its video codec{tag} has no decoder in this build of ffmpeg",
                   why=UNSUPPORTED, hint="convert it (e.g. to H.264) with the camera maker's tool")
    return stream


def _look(stream, frame, fps: float, container=None) -> Look:
    """The look of ``stream`` from its first ``frame``; with its ``container``, also how far
    back a seek must go (which reads packets: only where seeks need it)."""
    cc = stream.codec_context
    back = seek_back(container, stream) if container is not None else 0.0
    return decide(int(cc.field_order or 0), bool(frame.interlaced_frame),
                  int(frame.color_trc or cc.color_trc or 0),
                  int(frame.color_primaries or cc.color_primaries or 0), display_matrix(frame), fps,
                  back)


def probe(path: Path, kind: str = "") -> Probe:
    """Duration, rate, upright size, audio and look of a video (PyAV) or a still; ``kind``
    ("video", "still"; "" when the extension or else the content decides)."""
    path = Path(path)
    _check_file(path)
    kind = kind or media_kind(path.name) or sniff(path)
    if kind == "still":
        img = read_still(path)
        return Probe(0.0, 0.0, int(img.shape[1]), int(img.shape[0]), False, 1)
    import av

    try:
        with av.open(str(path)) as container:
            stream = _video_stream(path, container)
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
            first = next(container.decode(stream), None)
            look = _look(stream, first, fps, container) if first is not None else Look()
    except av.FFmpegError as exc:
        raise _bad(path, f"not a readable video ({exc.strerror or exc})") from exc
    if first is None:
        raise _bad(path, "not a single frame could be decoded", why=ZERO_LENGTH)
    if duration <= 0 and n_frames > 1 and fps:
        duration = n_frames / fps
    if duration <= 0 or not width or not height:
        raise _bad(path, f"no usable video (duration {duration:.2f} s, size {width}x{height})",
                   why=ZERO_LENGTH)
    width, height = turned_size(look, int(width), int(height))
    return Probe(duration, fps, width, height, has_audio, int(n_frames), look)


def look_of(path: Path) -> Look:
    """What showing this video right takes (see :mod:`retrieval.media.look`)."""
    return probe(path, "video").look


def read_still(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array, turned upright by its EXIF orientation: Pillow
    (with HEIF and RAW readers, :mod:`.stills`), else the first picture ffmpeg decodes of an
    image format only it reads (OpenEXR, DPX, ...)."""
    from .stills import identify, read_picture

    path = Path(path)
    _check_file(path)
    if is_raw(path.name) or identify(path) is not None:
        return read_picture(path)
    import av

    try:
        with av.open(str(path)) as container:
            stream = _video_stream(path, container)
            frame = next(container.decode(stream), None)
            if frame is None:
                raise _bad(path, "no picture could be decoded", why=ZERO_LENGTH)
            return frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise _bad(path, f"not a readable image ({exc.strerror or exc})") from exc


class _Shown:
    """Decoded frames through a look's filters, in PyAV's filter graph (built at the first
    frame, so it takes that frame's size and format). The filters keep timestamps; a
    deinterlacer holds one frame back, given out by :meth:`flush`."""

    def __init__(self, stream, look: Look) -> None:
        self.stream, self.filters = stream, look.stream_filters()
        self.graph = self.src = self.sink = None

    def _build(self, frame) -> None:
        import av.filter

        graph = av.filter.Graph()
        node = self.src = graph.add_buffer(template=self.stream)
        for name, args in self.filters:
            nxt = graph.add(name, args) if args else graph.add(name)
            node.link_to(nxt)
            node = nxt
        self.sink = graph.add("buffersink")
        node.link_to(self.sink)
        graph.configure()
        self.graph = graph

    def push(self, frame) -> list:
        if self.graph is None:
            self._build(frame)
        self.src.push(frame)
        return self._drain()

    def flush(self) -> list:
        if self.graph is None:
            return []
        self.src.push(None)
        return self._drain()

    def _drain(self) -> list:
        import av

        out = []
        while True:
            try:
                out.append(self.sink.pull())
            except (av.BlockingIOError, av.EOFError):
                return out


class _Toner:
    """A look's mapping to SDR (:meth:`Look.tone_filters`), applied to one picture at a time
    as it is converted to RGB; plain conversion when the look has none."""

    def __init__(self, look: Look) -> None:
        self.filters = look.tone_filters()
        self.graph = self.src = self.sink = None
        self.key = None

    def rgb(self, frame) -> np.ndarray:
        if not self.filters:
            return frame.to_ndarray(format="rgb24")
        key = (frame.width, frame.height, frame.format.name)
        if self.graph is None or key != self.key:
            import av.filter

            graph = av.filter.Graph()
            node = self.src = graph.add_buffer(width=frame.width, height=frame.height,
                                               format=frame.format.name,
                                               time_base=frame.time_base or Fraction(1, 25))
            for name, args in (*self.filters, ("format", "rgb24")):
                nxt = graph.add(name, args)
                node.link_to(nxt)
                node = nxt
            self.sink = graph.add("buffersink")
            node.link_to(self.sink)
            graph.configure()
            self.graph, self.key = graph, key
        self.src.push(frame)
        return self.sink.pull().to_ndarray()


def _shown(frames: Iterable, stream, look: Look) -> Iterator:
    """``frames`` as the look shows them (unchanged when it asks for nothing)."""
    if look.plain:
        yield from frames
        return
    shown = _Shown(stream, look)
    for frame in frames:
        yield from shown.push(frame)
    yield from shown.flush()


def read_frames(path: Path, times: list[float]) -> list[np.ndarray]:
    """The frame shown at (or first after) each time, as RGB arrays, in the order asked, as
    the camera meant it (:mod:`.look`).

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
            stream = _video_stream(path, container)
            stream.thread_type = "AUTO"
            first = next(container.decode(stream), None)
            look = _look(stream, first, 0.0, container) if first is not None else Look()
            toner = _Toner(look)
            tb = stream.time_base
            start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
            frames = None  # decoding iterator, positioned after `last`
            last = None  # (time, frame) most recently decoded
            for i in order:
                want = max(0.0, float(times[i]))
                if last is not None and last[0] >= want - 1e-6:
                    out[i] = toner.rgb(last[1])
                    continue
                if frames is None or last is None or want - last[0] > _DECODE_AHEAD_S:
                    frames = _seek(container, stream,
                                   want + start - min(want, look.seek_back), look)
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
                    frames = _seek(container, stream, None, look)
                    for frame in frames:
                        last = (_frame_time(frame, tb) - start, frame)
                        if last[0] >= want - 1e-6:
                            break
                if last is None:
                    raise _bad(path, "no frame could be decoded")
                out[i] = toner.rgb(last[1])
    except av.FFmpegError as exc:
        raise _bad(path, f"decoding failed ({exc.strerror or exc})") from exc
    return [o for o in out if o is not None]


@dataclass(frozen=True)
class StreamInfo:
    """What a one-pass scan needs to know before the first frame."""

    width: int  # upright
    height: int
    rate: Fraction  # the stream's guessed frame rate (what PySceneDetect uses)
    look: Look = Look()  # what the frames went through (see :mod:`.look`)


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

    __slots__ = ("index", "pts", "time_base", "seconds", "_frame", "_scalers", "_toner")

    def __init__(self, index: int, pts: int, time_base: Fraction, frame,
                 scalers: _Scalers | None = None, toner: _Toner | None = None) -> None:
        self.index = index  # 0, 1, 2, ... in presentation order
        self.pts = pts  # relative to the stream's start, in ``time_base`` units
        self.time_base = time_base
        self.seconds = float(pts * time_base)
        self._frame = frame
        self._scalers = scalers  # shared by the frames of one decode (one thread)
        self._toner = toner  # the look's mapping to SDR, when it has one

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

    def rgb(self, tone: bool = True) -> np.ndarray:
        """Full-size RGB uint8, as :func:`read_frames` returns it (HDR mapped to SDR, unless
        ``tone`` is False: measuring motion needs no true colour, and mapping is costly)."""
        if tone and self._toner is not None and self._toner.filters:
            return self._toner.rgb(self._frame)
        if self._scalers is None:
            return self._frame.to_ndarray(format="rgb24")
        return self._scalers.full.reformat(self._frame, format="rgb24").to_ndarray()


def decode_video(path: Path) -> tuple[StreamInfo, Iterator[DecodedFrame]]:
    """Every frame of the first video stream, in order, decoded once with the decoder's own
    threads (frame and slice), shown as the camera meant them (:mod:`.look`); SkippedMedia
    names the file and why when it cannot be read.

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
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        rate = stream.guessed_rate or stream.average_rate or stream.base_rate
        if not rate:
            raise _bad(path, "it has no frame rate")
        decoded = container.decode(stream)  # one generator: a second one would flush again
        first = next(decoded, None)
        if first is None:
            raise _bad(path, "not a single frame could be decoded", why=ZERO_LENGTH)
        look = _look(stream, first, float(rate))
        width, height = turned_size(look, int(stream.codec_context.width or stream.width),
                                    int(stream.codec_context.height or stream.height))
        info = StreamInfo(width, height, Fraction(int(rate.numerator), int(rate.denominator)),
                          look)
    except av.FFmpegError as exc:
        container.close()
        raise _bad(path, f"decoding failed ({exc.strerror or exc})") from exc
    except BaseException:
        container.close()
        raise
    return info, _frames(path, container, stream,
                         _shown(itertools.chain([first], decoded), stream, look), _Toner(look))


def _frames(path: Path, container, stream, decoded: Iterable,
            toner: _Toner) -> Iterator[DecodedFrame]:
    import av

    with container:
        start = stream.start_time or 0
        index = 0
        scalers = _Scalers()
        try:
            for frame in decoded:
                frame_tb = frame.time_base or stream.time_base
                if frame.pts is None or not frame_tb:
                    continue
                tb = Fraction(int(frame_tb.numerator), int(frame_tb.denominator))
                offset = start
                if start and stream.time_base != frame_tb:
                    offset = int(start * Fraction(int(stream.time_base.numerator),
                                                  int(stream.time_base.denominator)) / tb)
                yield DecodedFrame(index, int(frame.pts) - offset, tb, frame, scalers, toner)
                index += 1
        except av.FFmpegError as exc:
            raise _bad(path, f"decoding failed ({exc.strerror or exc})") from exc


def _seek(container, stream, seconds: float | None, look: Look):
    """A fresh frame iterator starting at the keyframe before ``seconds`` (None: the start),
    the frames shown as ``look`` says (a fresh filter graph: a seek breaks the fields' run)."""
    import av

    if seconds is None:
        container.seek(0)
    else:
        try:
            container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            container.seek(0)
    return _shown(container.decode(stream), stream, look)


def _frame_time(frame, time_base) -> float:
    if frame.pts is not None and time_base is not None:
        return float(frame.pts * time_base)
    return float(frame.time or 0.0)
