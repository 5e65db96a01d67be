"""What an export names: every clip of the edit as a media file that exists.

Editors (and the FCP / MLT readers) need a file behind every clip, but montage's title cards
are drawn at render time and its stills move (a slow pan). So cards and stills are rendered
to short clips with the film's own encoder (:func:`montage.film.render.render_clips`), and
generated shots are copied out of the generator's cache, all into ``NAME-media/`` beside the
export. Library footage is named where it lies: sources are never copied or touched.

Rendered files are named by a hash of what decides their pixels, so exporting again (to
another format, or after a recut) reuses them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor
from pathlib import Path

from montage.film.render import RENDER_VERSION, render_clips
from montage.film.soundtrack import probe_audio
from montage.film.timeline import read_soundtrack
from montage.optimize import EditDecision, EditDecisionList
from planner.errors import AudioError, ExportError, MediaError
from retrieval.media import probe


@dataclass(frozen=True)
class ExportClip:
    """One clip as the exporters see it: a media file that exists and which frames of it.

    Times are frames at the film's rate; ``media_frames`` is the file's own length in those
    frames (what an editor's bin shows)."""

    name: str  # the shot id
    text: str  # the script sentence
    path: Path  # absolute
    source_in: int
    frames: int
    media_frames: int
    width: int
    height: int
    has_audio: bool
    kind: str  # the film's kind: video, still or card
    source: str  # library, generated or placeholder
    media_rate: Fraction  # the file's own frame rate (the film's for rendered clips)
    has_video: bool = True


@dataclass(frozen=True)
class AudioClip:
    """A sound placed on the film's time line (film frame ``start``)."""

    start: int
    clip: ExportClip


@dataclass(frozen=True)
class AudioTrack:
    """An audio track of its own beside the picture (narration, music). The clips' own sound
    travels with the picture clips; these are the extra tracks every writer lays under it."""

    name: str
    clips: tuple[AudioClip, ...]


@dataclass(frozen=True)
class ExportEdit:
    """The edit with media for every clip: what every format writer reads."""

    name: str
    rate: Fraction
    width: int
    height: int
    clips: tuple[ExportClip, ...]
    audio: tuple[AudioTrack, ...] = ()

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.clips)

    def starts(self) -> list[int]:
        out, t = [], 0
        for c in self.clips:
            out.append(t)
            t += c.frames
        return out


@dataclass(frozen=True)
class MediaReport:
    """How the media folder was filled (the bench times card rendering apart from writing)."""

    folder: Path
    rendered: int
    reused: int
    copied: int
    seconds: float
    made: tuple[Path, ...] = field(default=())


def media_folder(out: Path) -> Path:
    """``film.fcpxml`` -> ``film-media/`` beside it."""
    return out.with_name(f"{out.stem}-media")


def _key(*fields: object) -> str:
    return hashlib.sha1(json.dumps([str(f) for f in fields]).encode()).hexdigest()[:12]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:40]


def _rendered_name(d: EditDecision, edl: EditDecisionList, media: Path | None) -> str:
    stamp = None
    if media is not None:
        st = media.stat()
        stamp = (str(media), st.st_size, st.st_mtime_ns)
    key = _key(RENDER_VERSION, d.kind, d.text if d.kind == "card" else "", stamp, d.frames,
               edl.rate, edl.width, edl.height)
    return f"{d.kind}-{_safe(d.shot_id)}-{key}.mov"


def _frames_of(seconds: float, rate: Fraction) -> int:
    return floor(Fraction(seconds) * rate + Fraction(1, 1000))


def _copy(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless an identical-sized copy is there; True when copied."""
    if dst.is_file() and dst.stat().st_size == src.stat().st_size:
        return False
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _audio_seconds(path: Path, what: str) -> float:
    """A file's length: read from the header of a PCM WAV (montage's narration lines: one
    ffmpeg process per line would cost a 500-shot export seconds), else asked of ffmpeg."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (OSError, EOFError, wave.Error):
        return probe_audio(path, what).seconds


def sound_tracks(otio_path: Path, rate: Fraction) -> tuple[AudioTrack, ...]:
    """The edit's narration and music (``edit.otio``'s audio tracks) as tracks of their own,
    each clip naming its file where it lies (the project's narration cache, the music file)."""
    sound = read_soundtrack(otio_path)
    if sound is None:
        return ()
    lengths: dict[str, int] = {}

    def clip(name: str, text: str, media: str, source_in: int, frames: int, source: str):
        if media not in lengths:
            try:
                seconds = _audio_seconds(Path(media), source)
            except AudioError as exc:
                raise ExportError(f"{otio_path}: {source} clip {name}: {exc.message}",
                                  "recut the project (montage make) first") from exc
            lengths[media] = _frames_of(seconds, rate)
        return ExportClip(name=name, text=text, path=Path(media), source_in=source_in,
                          frames=frames, media_frames=max(lengths[media], source_in + frames),
                          width=0, height=0, has_audio=True, kind="audio", source=source,
                          media_rate=rate, has_video=False)

    tracks = []
    if sound.lines:
        tracks.append(AudioTrack("narration", tuple(
            AudioClip(v.start, clip(v.shot_id, v.text, v.path, 0, v.frames, "narration"))
            for v in sound.lines)))
    if sound.music_clips:
        tracks.append(AudioTrack("music", tuple(
            AudioClip(c.start, clip(Path(sound.music).name, "", sound.music, c.source_in, c.frames,
                                    "music"))
            for c in sound.music_clips)))
    return tuple(tracks)


def prepare_media(edl: EditDecisionList, otio_path: Path, out: Path, *, name: str = "montage",
                  jobs: int | None = None) -> tuple[ExportEdit, MediaReport]:
    """Give every clip of ``edl`` a media file (see the module doc); returns the edit to write."""
    started = time.perf_counter()
    base = otio_path.parent
    folder = media_folder(out)
    plan: list[tuple[EditDecision, Path, Path | None]] = []  # decision, its file, a source to copy
    for i, d in enumerate(edl.decisions):
        media = (base / d.media).absolute() if d.media else None
        if d.kind != "card" and (media is None or not media.is_file()):
            raise ExportError(f"{otio_path}: clip {i} (shot {d.shot_id}): media file not found: "
                              f"{d.media or '(none)'}",
                              "restore the file, or recut the project (montage make) first")
        if d.kind in ("card", "still"):
            plan.append((d, folder / _rendered_name(d, edl, media), None))
        elif d.source == "generated":  # out of the generator cache, beside the export
            assert media is not None
            st = media.stat()
            plan.append((d, folder / f"gen-{_key(media, st.st_size, st.st_mtime_ns)[:8]}-"
                                     f"{_safe(media.name)}", media))
        else:
            assert media is not None
            plan.append((d, media, None))
    if any(path.parent == folder for _, path, _ in plan):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot make the media folder {folder} ({exc.strerror or exc})",
                              "choose a writable folder for the export") from exc
    todo: dict[Path, EditDecision] = {}
    copied = 0
    for d, path, copy_from in plan:
        if copy_from is not None:
            copied += _copy(copy_from, path)
        elif path.parent == folder and not path.is_file():
            todo.setdefault(path, d)
    render_clips(edl, [(d, path) for path, d in todo.items()], base=base, jobs=jobs)
    reused = len({path for _, path, c in plan if path.parent == folder and c is None}) - len(todo)
    clips = []
    probed: dict[Path, tuple[int, int, int, bool, Fraction]] = {}
    for d, path, _ in plan:
        if path not in probed:
            try:
                p = probe(path)
            except MediaError as exc:
                raise ExportError(f"shot {d.shot_id}: {exc.message}", exc.hint) from exc
            own = Fraction(p.fps).limit_denominator(1001) if p.fps > 0 else edl.rate
            probed[path] = (_frames_of(p.duration, edl.rate), p.width, p.height, p.has_audio, own)
        length, width, height, has_audio, own_rate = probed[path]
        clips.append(ExportClip(
            name=d.shot_id, text=d.text, path=path, source_in=d.source_in, frames=d.frames,
            media_frames=max(length, d.source_in + d.frames), width=width, height=height,
            has_audio=has_audio and d.kind == "video", kind=d.kind, source=d.source,
            media_rate=own_rate))
    edit = ExportEdit(name=name, rate=edl.rate, width=edl.width, height=edl.height,
                      clips=tuple(clips), audio=sound_tracks(otio_path, edl.rate))
    return edit, MediaReport(folder, len(todo), reused, copied,
                             time.perf_counter() - started, tuple(todo))
