"""Render an ``.otio`` edit to an H.264/AAC film with ffmpeg.

Each clip is encoded to its own segment with identical codec settings (H.264 video, PCM audio
of an exact sample count), then the segments are joined with the concat demuxer: the video is
copied, the audio encoded to AAC once. Encoding PCM per segment and AAC once avoids the AAC
priming/padding that would otherwise drift the sound by ~20 ms at every cut.

What is rendered is what :func:`montage.film.timeline.read_timeline` reads from the file, so a
hand-edited timeline renders as edited. The film is written to a hidden ``.partial`` file beside
the output and renamed at the very end: a failed run never leaves a film that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from math import ceil, floor, gcd
from pathlib import Path

from generator.placeholder import render_card
from montage.optimize import EditDecision, EditDecisionList
from retrieval.media import (Job, MediaInfo, count_video_frames, file_arg, media_info, run_ffmpeg,
                             run_ffmpeg_jobs)
from montage.film.audio import mix_film
from montage.film.filmcache import film_key, remember_film, reusable_film
from montage.film.sources import Source, check_inputs, still_input
from montage.film.timeline import read_soundtrack, read_timeline
from planner.errors import RenderError

RENDER_VERSION = 3  # 2: the title card's label changed; 3: sources shown by their look (deinterlaced, turned, HDR to SDR); bump when a change to the encoding makes cached clips stale
SAMPLE_RATE = 48000
ZOOM = Fraction(115, 100)  # Ken Burns: the still covers 1.15x the frame and the frame moves
PAN_ASPECT_TOLERANCE = 1.34  # a still this close to the frame's aspect is cropped to cover
# No B-frames: every segment then has the same zero reorder delay, so the concatenated stream
# keeps evenly spaced timestamps even across 1- and 2-frame clips (x264 shortens its B-frame
# delay for them, which breaks -c copy joins); it also encodes ~35% faster for ~18% more bits.
VIDEO_CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-bf", "0",
               "-pix_fmt", "yuv420p"]
SEGMENT_AUDIO = ["-c:a", "pcm_s16le", "-ar", str(SAMPLE_RATE), "-ac", "2"]
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


@dataclass(frozen=True)
class RenderResult:
    """What a render did: how many clips it encoded and how many it took from the cache."""

    path: Path
    clips: int
    encoded: int
    reused: int
    seconds: float


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
                 edl: EditDecisionList, threads: int) -> Job:
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
    args += ["-filter_complex", f"{video};{audio}", "-map", "[v]", "-map", "[a]",
             *VIDEO_CODEC, "-r", _rate_arg(rate), "-threads", str(threads), *SEGMENT_AUDIO,
             "-frames:v", str(d.frames), "-f", "mov", file_arg(seg.path)]
    return Job(tuple(args), f"rendering clip {seg.index} (shot {d.shot_id}, {d.kind})")


def _claim_output(out_path: Path) -> Path:
    """Create the hidden partial file now, so an unwritable folder fails before any encoding."""
    partial = out_path.with_name(f".{out_path.name}.partial")
    if out_path.is_dir():
        raise RenderError(f"the output {out_path} is a folder", "give the path of an .mp4 file")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb"):
            pass
    except OSError as exc:
        raise RenderError(f"cannot write the film to {out_path.parent} ({exc.strerror or exc})",
                          "choose a writable output folder (check its permissions)") from exc
    return partial


def _concat(segments: list[_Segment], edl: EditDecisionList, workdir: Path, partial: Path) -> None:
    """Join the segments; each one's duration is given so cuts land on exact film times."""
    lines = []
    for s in segments:
        us = _micros(s.start + s.decision.frames, edl.rate) - _micros(s.start, edl.rate)
        quoted = str(s.path).replace("'", "'\\''")  # the concat demuxer's quoting
        lines += [f"file '{quoted}'", f"duration {us // 1_000_000}.{us % 1_000_000:06d}"]
    listing = workdir / "segments.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", file_arg(listing),
                "-map", "0:v:0", "-map", "0:a:0",
                "-c:v", "copy", *FINAL_AUDIO, "-movflags", "+faststart", "-f", "mp4",
                file_arg(partial)], what=f"joining {len(segments)} clips into {partial.name}")


def render_timeline(otio_path: Path, out_path: Path, *, workdir: Path | None = None,
                    progress: bool = False, jobs: int | None = None) -> Path:
    """Render the edit in ``otio_path`` to ``out_path`` (H.264 + AAC MP4); returns ``out_path``.

    ``workdir`` keeps the segments (for inspection); by default a temporary folder is used and
    removed. ``jobs`` segment encodes run at once (default: 2 when there are 2+ CPUs).
    """
    return render_edit(otio_path, out_path, workdir=workdir, progress=progress, jobs=jobs).path


def render_edit(otio_path: Path, out_path: Path, *, workdir: Path | None = None,
                cache: Path | None = None, progress: bool | Callable[[str], None] = False,
                jobs: int | None = None, reuse: Path | None = None) -> RenderResult:
    """Render like :func:`render_timeline`; with ``cache``, encoded clips are kept there under
    a key of everything that decides their pixels and sound, and reused by later renders, so a
    recut re-encodes only the clips it changed. ``reuse`` names the film a previous render with
    this cache made (the published film): when the new cut asks for exactly its clips and sound
    and the file is as that render left it, it is copied instead of joined again."""
    started = time.perf_counter()
    otio_path, out_path = Path(otio_path), Path(out_path)
    edl = read_timeline(otio_path)
    sound = read_soundtrack(otio_path)  # narration and music: mixed under the picture
    cache = Path(cache).absolute() if cache is not None else None
    sources = check_inputs(edl, otio_path, out_path, cache)
    partial = _claim_output(out_path)
    clips = None
    if cache is not None:
        clips = _segments(edl, sources, cache, cache)  # the work folder is unused with a cache
        key = film_key([seg.path.name for seg in clips], sound)
        # a clip gone from the cache is encoded again now, so the next changed cut finds it
        if (reuse is not None and reusable_film(cache, key, Path(reuse))
                and all(seg.path.is_file() for seg in clips)):
            try:
                shutil.copyfile(reuse, partial)
                os.replace(partial, out_path)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise RenderError(f"cannot write the film to {out_path} ({exc})",
                                  "choose a writable output folder") from exc
            _tell(progress, f"render: the {len(edl.decisions)} clips and sound are the last "
                            "film's; copied it")
            remember_film(cache, key, out_path)
            n = len(edl.decisions)
            return RenderResult(out_path, n, 0, n, time.perf_counter() - started)
    cpus = os.cpu_count() or 1
    parallel = max(1, jobs if jobs else min(2, cpus))
    threads = max(1, cpus // parallel)
    own_workdir = workdir is None
    try:
        work = Path(tempfile.mkdtemp(prefix="montage-render-")) if own_workdir else Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        try:
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
            encoded = _render(edl, sources, work.absolute(), partial, parallel, threads, progress,
                              cache, clips)
            if sound is not None:
                _tell(progress, "render: mixing narration and music")
                mix_film(partial, sound, edl.frames, work.absolute())
        finally:
            if own_workdir:
                shutil.rmtree(work, ignore_errors=True)
        try:
            os.replace(partial, out_path)
        except OSError as exc:
            raise RenderError(f"cannot move the finished film to {out_path} ({exc})",
                              "remove what is in the way, or choose another output path") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if cache is not None:
        remember_film(cache, key, out_path)
    n = len(edl.decisions)
    return RenderResult(out_path, n, encoded, n - encoded, time.perf_counter() - started)


def segment_key(d: EditDecision, src: "Source", edl: EditDecisionList, samples: int,
                variant: int) -> str:
    """Hash of everything that decides a clip's pixels and sound (not its place in the film)."""
    media = None
    if src.path is not None:
        st = src.path.stat()
        media = [str(src.path), st.st_size, st.st_mtime_ns]
    # the pan variant moves only a still: two cards of one text are one clip, whatever their ids
    fields = [RENDER_VERSION, media, d.kind, d.source_in, d.frames, str(edl.rate), edl.width,
              edl.height, d.text if d.kind == "card" else "", samples,
              variant if d.kind == "still" else 0, VIDEO_CODEC, SEGMENT_AUDIO]
    return hashlib.sha1(json.dumps(fields).encode()).hexdigest()[:20]


def _tell(progress: bool | Callable[[str], None], text: str) -> None:
    """Progress goes to a callback (the studio) or, when ``progress`` is True, to stderr."""
    if callable(progress):
        progress(text)
    elif progress:
        print(text, file=sys.stderr, flush=True)


def _render(edl: EditDecisionList, sources: list[Source], work: Path, partial: Path,
            parallel: int, threads: int, progress: bool | Callable[[str], None],
            cache: Path | None, segments: list[_Segment] | None = None) -> int:
    """Encode the clips not in ``cache`` and join all of them; returns how many were encoded.
    ``segments``: the clips' files, when the caller has laid them out already."""
    segments = segments if segments is not None else _segments(edl, sources, work, cache)
    # identical clips (a refrain's title cards, say) share one key: each key is encoded once
    todo, planned = [], set()
    for seg, src in zip(segments, sources):
        if seg.path not in planned and not seg.path.is_file():
            planned.add(seg.path)
            todo.append((seg, src))
    _encode(todo, edl, work, parallel, threads, progress)
    _tell(progress, f"render: joining {len(segments)} clips ({len(todo)} encoded, "
                    f"{len(segments) - len(todo)} from the cache)")
    try:
        _join(segments, edl, work, partial)
    except RenderError:
        # a cached clip damaged since it was made (cut short, edited): encode it again
        fresh = {seg.path for seg, _ in todo}
        reused = {seg.path: (seg, src) for seg, src in zip(segments, sources)
                  if seg.path not in fresh}
        bad = [(seg, src) for seg, src in reused.values()
               if _frames(seg.path) != seg.decision.frames]
        if not bad:
            raise
        _tell(progress, f"render: {len(bad)} cached clip(s) were damaged; encoding them again")
        for seg, _ in bad:
            seg.path.unlink(missing_ok=True)
        _encode(bad, edl, work, parallel, threads, progress)
        todo += bad
        _join(segments, edl, work, partial)
    return len(todo)


def _segments(edl: EditDecisionList, sources: list[Source], work: Path,
              cache: Path | None) -> list[_Segment]:
    """Each clip with the file it is encoded to: in the cache under its key, else the work
    file of the first clip with the same key."""
    segments, first = [], {}
    for i, (d, start, src) in enumerate(zip(edl.decisions, edl.starts(), sources)):
        seg = _Segment(i, d, start, work / f"seg{i:04d}.mov")
        samples = _samples(start + d.frames, edl.rate) - _samples(start, edl.rate)
        key = segment_key(d, src, edl, samples, seg.variant)
        path = (cache / f"{key}.mov" if cache is not None
                else work / f"seg{first.setdefault(key, i):04d}.mov")
        segments.append(replace(seg, path=path))
    return segments


def _frames(path: Path) -> int | None:
    """Frames in a clip, or None when it cannot be read."""
    try:
        return count_video_frames(path)
    except RenderError:
        return None


def _encode(todo: list[tuple[_Segment, Source]], edl: EditDecisionList, work: Path,
            parallel: int, threads: int, progress: bool | Callable[[str], None]) -> None:
    """Encode each segment of ``todo`` to its path, checking its frame count first."""
    # encode into a temporary name of its own (another thread or process may be encoding the
    # same key into the same cache); only a verified clip gets its cache name
    run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temps = {seg.index: seg.path.with_name(f"{seg.path.stem}.{run}.tmp.mov") for seg, _ in todo}
    jobs = []
    for seg, src in todo:
        picture = None
        if seg.decision.kind == "card":
            picture = render_card(seg.decision.text, edl.width, edl.height,
                                  work / f"card{seg.index:04d}.png")
        elif seg.decision.kind == "still" and src.path is not None:
            picture = still_input(src.path, work / f"still{seg.index:04d}.png")
        jobs.append(_segment_job(replace(seg, path=temps[seg.index]), src, picture, edl,
                                 threads))

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


def _join(segments: list[_Segment], edl: EditDecisionList, work: Path, partial: Path) -> None:
    _concat(segments, edl, work, partial)
    got = count_video_frames(partial)
    if got != edl.frames:
        raise RenderError(f"the joined film has {got} frames, expected {edl.frames}",
                          "this is a bug in montage's renderer; please report it")


def render_clips(edl: EditDecisionList, items: list[tuple[EditDecision, Path]], *, base: Path,
                 jobs: int | None = None) -> None:
    """Render single clips (title cards, stills with their pan) to files of their own, encoded
    exactly as the film encodes them (H.264 + PCM in .mov), so an export can name real media
    for every clip. Stills' relative paths are taken relative to ``base`` (the .otio's folder).
    Each file is written under a temporary name and renamed once its frame count is checked."""
    if not items:
        return
    cpus = os.cpu_count() or 1
    parallel = max(1, jobs if jobs else min(2, cpus))
    threads = max(1, cpus // parallel)
    work = Path(tempfile.mkdtemp(prefix="montage-clips-"))
    try:
        todo = []
        for i, (d, out) in enumerate(items):
            src = Source(None, None)
            if d.kind != "card":
                media = (base / d.media).absolute()
                src = Source(media, media_info(media, d.kind))
            todo.append((_Segment(i, d, 0, out), src))
        _encode(todo, edl, work, parallel, threads, False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
