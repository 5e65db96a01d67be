"""Render an ``.otio`` edit to an H.264/AAC film with ffmpeg.

Each clip is encoded to its own segment with identical codec settings (H.264 video, FLAC audio
of an exact sample count: :mod:`montage.film.encode`), then the segments are joined with the
concat demuxer: the video is copied, the audio encoded to AAC once. Lossless audio per segment
and AAC once avoids the AAC priming/padding that would otherwise drift the sound by ~20 ms at
every cut. A *preview* join copies the FLAC audio too: the same film, playable in a browser at
once (a remux, no encoding), which the studio plays while :func:`finish_film` writes the AAC
film from the same segments.

What is rendered is what :func:`montage.film.timeline.read_timeline` reads from the file, so a
hand-edited timeline renders as edited. The film is written to a hidden ``.partial`` file beside
the output and renamed at the very end: a failed run never leaves a film that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from montage.optimize import EditDecision, EditDecisionList
from retrieval.media import count_video_frames, file_arg, media_info, run_ffmpeg
from montage.film.audio import mix_film
from montage.film.encode import (FINAL_AUDIO, SEGMENT_AUDIO, SEGMENT_FORMAT,
                                 VIDEO_CODEC, _encode, _frames, _micros, _samples, _Segment,
                                 _tell)
from montage.film.filmcache import film_key, remember_film, reusable_film
from montage.film.sources import Source, check_inputs
from montage.film.timeline import read_soundtrack, read_timeline
from planner.errors import RenderError

RENDER_VERSION = 4  # 3: sources shown by their look (deinterlaced, turned, HDR to SDR); 4: FLAC sound in MP4 segments; bump when a change to the encoding makes cached clips stale


@dataclass(frozen=True)
class RenderResult:
    """What a render did: how many clips it encoded and how many it took from the cache;
    ``preview``: the film's sound is the segments' FLAC (see :func:`finish_film`)."""

    path: Path
    clips: int
    encoded: int
    reused: int
    seconds: float
    preview: bool = False


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


def _concat(segments: list[_Segment], edl: EditDecisionList, workdir: Path, partial: Path,
            preview: bool = False) -> None:
    """Join the segments; each one's duration is given so cuts land on exact film times.
    ``preview``: copy their sound too (a remux: nothing is encoded)."""
    lines = []
    for s in segments:
        us = _micros(s.start + s.decision.frames, edl.rate) - _micros(s.start, edl.rate)
        quoted = str(s.path).replace("'", "'\\''")  # the concat demuxer's quoting
        lines += [f"file '{quoted}'", f"duration {us // 1_000_000}.{us % 1_000_000:06d}"]
    listing = workdir / "segments.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", file_arg(listing),
                "-map", "0:v:0", "-map", "0:a:0",
                "-c:v", "copy", *(["-c:a", "copy"] if preview else FINAL_AUDIO),
                "-movflags", "+faststart", "-f", "mp4",
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
                jobs: int | None = None, reuse: Path | None = None,
                preview: bool = False) -> RenderResult:
    """Render like :func:`render_timeline`; with ``cache``, encoded clips are kept there under
    a key of everything that decides their pixels and sound, and reused by later renders, so a
    recut re-encodes only the clips it changed. ``reuse`` names the film a previous render with
    this cache made (the published film): when the new cut asks for exactly its clips and sound
    and the file is as that render left it, it is copied instead of joined again.

    ``preview`` (with a cache, for an edit without narration or music): join with the segments'
    FLAC sound copied, a film a browser plays, in a fraction of the time (the result says
    ``preview``); :func:`finish_film` then writes the AAC film from the same cache."""
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
    parallel = max(1, jobs if jobs else min(2, os.cpu_count() or 1))
    preview = preview and cache is not None and sound is None
    own_workdir = workdir is None
    try:
        work = Path(tempfile.mkdtemp(prefix="montage-render-")) if own_workdir else Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        try:
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
            encoded = _render(edl, sources, work.absolute(), partial, parallel, progress,
                              cache, clips, preview)
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
    if cache is not None and not preview:  # only the finished film is copied by a later cut
        remember_film(cache, key, out_path)
    n = len(edl.decisions)
    return RenderResult(out_path, n, encoded, n - encoded, time.perf_counter() - started,
                        preview)


def finish_film(otio_path: Path, film: Path, cache: Path,
                progress: bool | Callable[[str], None] = False) -> RenderResult:
    """The AAC film of an edit whose preview was rendered with ``cache`` (its clips are all
    there): joined beside ``film`` and then put in its place in one rename, so a reader sees
    the preview or the finished film, never half of one."""
    film = Path(film)
    tmp = film.with_name(f".{film.stem}.finishing{film.suffix}")
    result = render_edit(otio_path, tmp, cache=cache, progress=progress)
    try:
        os.replace(tmp, film)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RenderError(f"cannot move the finished film to {film} ({exc})",
                          "remove what is in the way") from exc
    return replace(result, path=film)


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


def _render(edl: EditDecisionList, sources: list[Source], work: Path, partial: Path,
            parallel: int, progress: bool | Callable[[str], None],
            cache: Path | None, segments: list[_Segment] | None = None,
            preview: bool = False) -> int:
    """Encode the clips not in ``cache`` and join all of them; returns how many were encoded.
    ``segments``: the clips' files, when the caller has laid them out already."""
    segments = segments if segments is not None else _segments(edl, sources, work, cache)
    # identical clips (a refrain's title cards, say) share one key: each key is encoded once
    todo, planned = [], set()
    for seg, src in zip(segments, sources):
        if seg.path not in planned and not seg.path.is_file():
            planned.add(seg.path)
            todo.append((seg, src))
    _encode(todo, edl, work, parallel, progress)
    _tell(progress, f"render: joining {len(segments)} clips ({len(todo)} encoded, "
                    f"{len(segments) - len(todo)} from the cache)")
    try:
        _join(segments, edl, work, partial, preview)
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
        _encode(bad, edl, work, parallel, progress)
        todo += bad
        _join(segments, edl, work, partial, preview)
    return len(todo)


def _segments(edl: EditDecisionList, sources: list[Source], work: Path,
              cache: Path | None) -> list[_Segment]:
    """Each clip with the file it is encoded to: in the cache under its key, else the work
    file of the first clip with the same key."""
    segments, first = [], {}
    for i, (d, start, src) in enumerate(zip(edl.decisions, edl.starts(), sources)):
        suffix = SEGMENT_FORMAT[1]
        seg = _Segment(i, d, start, work / f"seg{i:04d}{suffix}")
        samples = _samples(start + d.frames, edl.rate) - _samples(start, edl.rate)
        key = segment_key(d, src, edl, samples, seg.variant)
        path = (cache / f"{key}{suffix}" if cache is not None
                else work / f"seg{first.setdefault(key, i):04d}{suffix}")
        segments.append(replace(seg, path=path))
    return segments


def _join(segments: list[_Segment], edl: EditDecisionList, work: Path, partial: Path,
          preview: bool = False) -> None:
    _concat(segments, edl, work, partial, preview)
    got = count_video_frames(partial)
    if got != edl.frames:
        raise RenderError(f"the joined film has {got} frames, expected {edl.frames}",
                          "this is a bug in montage's renderer; please report it")


def render_clips(edl: EditDecisionList, items: list[tuple[EditDecision, Path]], *, base: Path,
                 jobs: int | None = None) -> None:
    """Render single clips (title cards, stills with their pan) to files of their own, encoded
    as the film encodes them (H.264; their sound as PCM in .mov, what editors read), so an
    export can name real media for every clip. Stills' relative paths are taken relative to ``base`` (the .otio's folder).
    Each file is written under a temporary name and renamed once its frame count is checked."""
    if not items:
        return
    parallel = max(1, jobs if jobs else min(2, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="montage-clips-"))
    try:
        todo = []
        for i, (d, out) in enumerate(items):
            src = Source(None, None)
            if d.kind != "card":
                media = (base / d.media).absolute()
                src = Source(media, media_info(media, d.kind))
            todo.append((_Segment(i, d, 0, out), src))
        _encode(todo, edl, work, parallel, False, export=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
