"""Encoding one clip of the film to its own segment (ffmpeg): footage trimmed and letterboxed,
a still with its slow pan (Ken Burns), a title card held; each with its sound (the clip's own,
or silence) of an exact sample count.

Every segment has identical codec settings, so :mod:`montage.film.render` joins them by copying
the picture. The sound is FLAC (lossless, no encoder delay, each frame whole): a join may copy it
too (the studio plays such a film at once) or encode it to AAC once for the finished film.
"""
from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from math import ceil, floor, gcd
from pathlib import Path

from generator.placeholder import render_card
from montage.optimize import EditDecision, EditDecisionList
from retrieval.media import Job, MediaInfo, count_video_frames, file_arg, run_ffmpeg_jobs
from montage.film.sources import Source, still_input
from planner.errors import RenderError

SAMPLE_RATE = 48000
ZOOM = Fraction(115, 100)  # Ken Burns: the still covers 1.15x the frame and the frame moves
PAN_ASPECT_TOLERANCE = 1.34  # a still this close to the frame's aspect is cropped to cover
# No B-frames: every segment then has the same zero reorder delay, so the concatenated stream
# keeps evenly spaced timestamps even across 1- and 2-frame clips (x264 shortens its B-frame
# delay for them, which breaks -c copy joins); it also encodes ~35% faster for ~18% more bits.
VIDEO_CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-bf", "0",
               "-pix_fmt", "yuv420p"]
# a segment's sound: FLAC (lossless like PCM, but playable in an MP4 by browsers, and copied
# across a join without a gap: FLAC has no encoder delay and every frame stands alone)
SEGMENT_AUDIO = ["-c:a", "flac", "-compression_level", "0", "-frame_size", "4096",
                 "-ar", str(SAMPLE_RATE), "-ac", "2"]  # one block size: one STREAMINFO for all
SEGMENT_FORMAT = ("mp4", ".mp4")  # ffmpeg's muxer, the file's suffix
# a clip written for an editing program (exports): PCM in QuickTime, what every editor reads
EXPORT_AUDIO = ["-c:a", "pcm_s16le", "-ar", str(SAMPLE_RATE), "-ac", "2"]
EXPORT_FORMAT = ("mov", ".mov")
FINAL_AUDIO = ["-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-ac", "2"]


@dataclass(frozen=True)
class _Segment:
    index: int
    decision: EditDecision
    start: int  # film frame where this clip starts
    path: Path

    @property
    def variant(self) -> int:
        """0..3 from the shot id, not the position: a moved shot keeps its pan (and its cache)."""
        return hashlib.sha1(self.decision.shot_id.encode()).digest()[0] % 4


def _even(x: Fraction | float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _canvas(w: int, h: int) -> tuple[int, int]:
    """About ZOOM times the frame, with exactly the frame's aspect (even sides) when possible,
    so zooming out of the canvas never stretches the picture."""
    g = gcd(w, h)
    a, b = w // g, h // g
    k = max(1, round((ZOOM - 1) * w / (2 * a)))
    if 2 * k * a <= w * (ZOOM - 1) * 2:
        return w + 2 * k * a, h + 2 * k * b
    return _even(w * ZOOM), _even(h * ZOOM)


def _seconds(frames: int, rate: Fraction) -> str:
    """Exact-enough seconds for ``-ss``: floored to the microsecond so it never passes the frame."""
    us = floor(Fraction(frames) * 1_000_000 / rate)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _samples(frame: int, rate: Fraction) -> int:
    return round(Fraction(frame) * SAMPLE_RATE / rate)


def _micros(frame: int, rate: Fraction) -> int:
    return round(Fraction(frame) * 1_000_000 / rate)


def _rate_arg(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def _letterbox(w: int, h: int) -> str:
    return (f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1")


def _hold(rate: Fraction) -> str:
    """Turn one decoded picture into an endless stream at the film rate (decoded once)."""
    return f"loop=loop=-1:size=1:start=0,setpts=N/({_rate_arg(rate)})/TB"


def _still_filter(info: MediaInfo, seg: _Segment, edl: EditDecisionList) -> str:
    """Ken Burns: a slow pan across a still that covers the frame, or a slow zoom-in on a
    letterboxed one (portrait stills) so the whole picture always stays visible."""
    w, h, n = edl.width, edl.height, seg.decision.frames
    last = max(1, n - 1)
    ratio = Fraction(info.width, info.height) / Fraction(w, h)
    cw, ch = _canvas(w, h)
    if 1 / PAN_ASPECT_TOLERANCE <= ratio <= PAN_ASPECT_TOLERANCE:
        dx, dy = cw - w, ch - h
        flip_x, flip_y = seg.variant % 2 == 1, seg.variant in (1, 2)
        x = f"{dx}-{dx}*n/{last}" if flip_x else f"{dx}*n/{last}"
        y = f"{dy}-{dy}*n/{last}" if flip_y else f"{dy}*n/{last}"
        return (f"[0:v:0]scale={cw}:{ch}:force_original_aspect_ratio=increase,crop={cw}:{ch},"
                f"setsar=1,format=rgb24,{_hold(edl.rate)},"
                f"crop={w}:{h}:x='{x}':y='{y}':exact=1,format=yuv420p[v]")
    zoom = cw / w  # ends with the frame-sized window: the still fills the letterbox exactly
    return (f"[0:v:0]scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
            f"pad={cw}:{ch}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,{_hold(edl.rate)},"
            f"zoompan=z='1+{zoom - 1:.4f}*on/{last}':d=1:s={w}x{h}:fps={_rate_arg(edl.rate)}:"
            f"x='(iw-iw/zoom)/2':y='(ih-ih/zoom)/2',setsar=1,format=yuv420p[v]")


def _segment_job(seg: _Segment, src: Source, picture: Path | None,
                 edl: EditDecisionList, threads: int, export: bool = False) -> Job:
    """One clip's encode; ``picture``: what ffmpeg reads for a card or a still."""
    d, rate, info = seg.decision, edl.rate, src.info
    samples = _samples(seg.start + d.frames, rate) - _samples(seg.start, rate)
    silence = ["-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo"]
    if d.kind == "video":
        assert info is not None and src.path is not None
        # -ss before -i: ffmpeg seeks, then decodes and drops frames before the in-point; a
        # source without a seek index is sought ``back`` frames early and trimmed exactly
        # here. The look turns the picture itself (after deinterlacing): no autorotate.
        back = min(d.source_in, ceil(info.look.seek_back * rate))
        args = ["-noautorotate", "-ss", _seconds(d.source_in - back, rate),
                "-i", file_arg(src.path)]
        pad = max(2, round(rate / 10))  # tolerate a rounding shortfall at the source's end
        skip_v = f"trim=start_frame={back},setpts=PTS-STARTPTS," if back else ""
        skip_a = (f"atrim=start_sample={_samples(back, rate)},asetpts=PTS-STARTPTS,"
                  if back else "")
        video = (f"[0:v:0]{info.look.chain(float(rate))}fps={_rate_arg(rate)}:start_time=0,"
                 f"{skip_v}{_letterbox(edl.width, edl.height)},"
                 f"format=yuv420p,tpad=stop_mode=clone:stop={pad}[v]")
        if info.has_audio:
            audio = (f"[0:a:0]aresample={SAMPLE_RATE}:async=1:first_pts=0,{skip_a}"
                     f"aformat=sample_fmts=s16:channel_layouts=stereo,apad,"
                     f"atrim=end_sample={samples}[a]")
        else:
            args += silence
            audio = f"[1:a]atrim=end_sample={samples},aformat=sample_fmts=s16[a]"
    else:
        assert picture is not None
        args = ["-framerate", _rate_arg(rate), "-i", file_arg(picture), *silence]
        if d.kind == "card":
            video = (f"[0:v:0]{_letterbox(edl.width, edl.height)},format=yuv420p,"
                     f"{_hold(rate)}[v]")
        else:
            assert info is not None
            video = _still_filter(info, seg, edl)
        audio = f"[1:a]atrim=end_sample={samples},aformat=sample_fmts=s16[a]"
    sound, (muxer, _) = (EXPORT_AUDIO, EXPORT_FORMAT) if export else (SEGMENT_AUDIO, SEGMENT_FORMAT)
    args += ["-filter_complex", f"{video};{audio}", "-map", "[v]", "-map", "[a]",
             *VIDEO_CODEC, "-r", _rate_arg(rate), "-threads", str(threads), *sound,
             "-frames:v", str(d.frames), "-f", muxer, file_arg(seg.path)]
    return Job(tuple(args), f"rendering clip {seg.index} (shot {d.shot_id}, {d.kind})")


def _frames(path: Path) -> int | None:
    """Frames in a clip, or None when it cannot be read."""
    try:
        return count_video_frames(path)
    except RenderError:
        return None


def _encode(todo: list[tuple[_Segment, Source]], edl: EditDecisionList, work: Path,
            parallel: int, progress: bool | Callable[[str], None], export: bool = False) -> None:
    """Encode each segment of ``todo`` to its path, checking its frame count first.
    ``parallel`` encodes at once, each with an equal share of the cores (one clip: all)."""
    parallel = max(1, min(parallel, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // parallel)
    # encode into a temporary name of its own (another thread or process may be encoding the
    # same key into the same cache); only a verified clip gets its cache name
    run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    suffix = (EXPORT_FORMAT if export else SEGMENT_FORMAT)[1]
    temps = {seg.index: seg.path.with_name(f"{seg.path.stem}.{run}.tmp{suffix}") for seg, _ in todo}
    jobs = []
    for seg, src in todo:
        picture = None
        if seg.decision.kind == "card":
            picture = render_card(seg.decision.text, edl.width, edl.height,
                                  work / f"card{seg.index:04d}.png")
        elif seg.decision.kind == "still" and src.path is not None:
            picture = still_input(src.path, work / f"still{seg.index:04d}.png")
        jobs.append(_segment_job(replace(seg, path=temps[seg.index]), src, picture, edl, threads,
                                 export))

    done = 0

    def report(i: int) -> None:
        nonlocal done
        done += 1
        d = todo[i][0].decision
        _tell(progress, f"render: clip {done}/{len(todo)} encoded (shot {d.shot_id}, {d.kind}, "
                        f"{d.frames} frames)")

    try:
        if jobs:
            timeout = 60.0 + 30.0 * max(float(seg.decision.frames / edl.rate) for seg, _ in todo)
            run_ffmpeg_jobs(jobs, parallel=parallel, timeout=timeout, on_done=report)
        for seg, _ in todo:
            got = count_video_frames(temps[seg.index])
            if got != seg.decision.frames:
                d = seg.decision
                raise RenderError(
                    f"clip {seg.index} (shot {d.shot_id}): got {got} frames from "
                    f"{d.media or 'the title card'} starting at frame {d.source_in}, "
                    f"expected {d.frames}",
                    "the source is shorter than the clip: shorten the clip or re-run retrieval",
                )
            os.replace(temps[seg.index], seg.path)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _tell(progress: bool | Callable[[str], None], text: str) -> None:
    """Progress goes to a callback (the studio) or, when ``progress`` is True, to stderr."""
    if callable(progress):
        progress(text)
    elif progress:
        print(text, file=sys.stderr, flush=True)


