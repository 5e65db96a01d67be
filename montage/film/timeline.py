"""The edit on disk: an EditDecisionList as an OpenTimelineIO timeline, and back.

This is the only module that imports opentimelineio and the only place that turns film-rate
frames into ``RationalTime``. The renderer reads the ``.otio`` file through
:func:`read_timeline`, so what is rendered is exactly what an editor opens: clip ranges and
media come from the OTIO clips themselves; project fields live under ``metadata["montage"]``.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from montage.film.soundtrack import MusicClip, Soundtrack, VoiceLine
from montage.optimize import EditDecision, EditDecisionList
from planner.errors import ProjectError

if TYPE_CHECKING:  # pragma: no cover
    import opentimelineio as otio

CARD_GENERATOR = "montage.title_card"
NARRATION_TRACK = "narration"  # the audio tracks montage writes beside the picture
MUSIC_TRACK = "music"
TIMELINE_VERSION = 1
_HINT = "re-run the montage step to write a fresh edit.otio, or fix the file in an OTIO editor"


def otio_module():
    """The opentimelineio module (imported here, on first use); exporters use it through this."""
    try:
        import opentimelineio
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ProjectError("opentimelineio is not installed", "pip install opentimelineio") from exc
    return opentimelineio


_otio = otio_module


def _rate_text(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def _media_url(media: str) -> str:
    """A file URI for an absolute path; other strings (already URLs, relative) pass through."""
    path = Path(media)
    return path.as_uri() if path.is_absolute() else media


def _media_path(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return url


def _clip(d: EditDecision, rate: Fraction) -> "otio.schema.Clip":
    otio = _otio()
    r = float(rate)
    source_range = otio.opentime.TimeRange(
        otio.opentime.RationalTime(d.source_in, r), otio.opentime.RationalTime(d.frames, r)
    )
    if d.kind == "card":
        ref = otio.schema.GeneratorReference(
            generator_kind=CARD_GENERATOR, parameters={"text": d.text}
        )
    elif d.media:
        ref = otio.schema.ExternalReference(target_url=_media_url(d.media))
    else:
        ref = otio.schema.MissingReference()
    meta = {
        "shot_id": d.shot_id,
        "score": float(d.score),
        "source": d.source,
        "kind": d.kind,
        "text": d.text,
        "library_shot": d.library_shot,
        "reason": d.reason,
        "media": d.media,
        "costs": [[name, float(value)] for name, value in d.costs],  # a list: keeps the order
        "bends": list(d.bends),
        "runner_up": d.runner_up,
        "decided_by": d.decided_by,
    }
    if d.provenance:
        meta["provenance"] = dict(d.provenance)
        if meta["provenance"].get("stand_in") == "yes":  # said plainly, for editors and tools
            meta["stand_in"] = "a previs stand-in composed from library frames and cast photos"
    for key in ("confidence", "bar"):  # sd (montage.optimize.confidence); absent when unknown
        if getattr(d, key) is not None:
            meta[key] = float(getattr(d, key))
    return otio.schema.Clip(
        name=d.shot_id, media_reference=ref, source_range=source_range,
        metadata={"montage": meta},
    )


def _audio_track(name: str, items: list[tuple[int, "otio.schema.Clip"]], rate: Fraction):
    """An audio track with each clip at its film frame (gaps between)."""
    otio = _otio()
    r = float(rate)
    track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
    at = 0
    for start, clip in items:
        if start > at:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, r), otio.opentime.RationalTime(start - at, r))))
        track.append(clip)
        at = max(at, start) + round(clip.source_range.duration.value)
    return track


def _sound_clip(name: str, media: str, source_in: int, frames: int, rate: Fraction,
                meta: dict) -> "otio.schema.Clip":
    otio = _otio()
    r = float(rate)
    return otio.schema.Clip(
        name=name, media_reference=otio.schema.ExternalReference(target_url=_media_url(media)),
        source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(source_in, r),
                                             otio.opentime.RationalTime(frames, r)),
        metadata={"montage": meta})


def _soundtrack_tracks(sound: Soundtrack) -> list:
    """The narration and music as audio tracks of their own (none when empty)."""
    tracks = []
    if sound.lines:
        tracks.append(_audio_track(NARRATION_TRACK, [
            (v.start, _sound_clip(v.shot_id, v.path, 0, v.frames, sound.rate,
                                  {"shot_id": v.shot_id, "text": v.text, "speech": v.speech}))
            for v in sound.lines], sound.rate))
    if sound.music_clips:
        tracks.append(_audio_track(MUSIC_TRACK, [
            (c.start, _sound_clip(Path(sound.music).name, sound.music, c.source_in, c.frames,
                                  sound.rate, {"music": True}))
            for c in sound.music_clips], sound.rate))
    return tracks


def edl_to_timeline(edl: EditDecisionList, name: str = "montage",
                    sound: Soundtrack | None = None) -> "otio.schema.Timeline":
    """One video track, one clip per decision, in film order; with ``sound``, the narration
    and music as audio tracks beside it."""
    otio = _otio()
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for d in edl.decisions:
        track.append(_clip(d, edl.rate))
    timeline = otio.schema.Timeline(name=name)
    timeline.tracks.append(track)
    for extra in _soundtrack_tracks(sound) if sound is not None else ():
        timeline.tracks.append(extra)
    timeline.metadata["montage"] = {
        "version": TIMELINE_VERSION,
        "width": int(edl.width),
        "height": int(edl.height),
        "rate": _rate_text(edl.rate),
    }
    return timeline


def write_timeline(edl: EditDecisionList, path: Path, name: str = "montage",
                   sound: Soundtrack | None = None) -> Path:
    """Write ``edl`` (and its ``sound``) as an ``.otio`` file (atomically: a crash never leaves
    half a file)."""
    otio = _otio()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # to a string, then written by Python: OTIO's own file writer does not report a
        # failed write (a full disk left a cut-short file that read back as corrupt)
        text = otio.adapters.write_to_string(edl_to_timeline(edl, name, sound),
                                             adapter_name="otio_json")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ProjectError(f"cannot write {path}: {exc.strerror or exc}",
                           "check the disk has room and the project folder is writable") from exc
    return path


def _field(meta: Any, key: str, path: Path, where: str) -> Any:
    if key not in meta:
        raise ProjectError(f"{path}: {where} has no metadata['montage']['{key}']", _HINT)
    return meta[key]


def _parse_rate(text: Any, path: Path) -> Fraction:
    try:
        rate = Fraction(str(text))
    except (ValueError, ZeroDivisionError) as exc:
        raise ProjectError(f"{path}: timeline rate {text!r} is not 'num/den'", _HINT) from exc
    if rate <= 0:
        raise ProjectError(f"{path}: timeline rate {text!r} must be positive", _HINT)
    return rate


def _frames(t: "otio.opentime.RationalTime", rate: Fraction, path: Path, where: str) -> int:
    value = t.rescaled_to(float(rate)).value
    frames = round(value)
    if abs(value - frames) > 1e-6:
        raise ProjectError(f"{path}: {where} starts or lasts {value} frames, not a whole frame "
                           f"at {_rate_text(rate)} fps", _HINT)
    return frames


def _decision(clip: Any, rate: Fraction, path: Path, index: int) -> EditDecision:
    otio = _otio()
    where = f"clip {index} ({clip.name!r})"
    meta = clip.metadata.get("montage")
    if meta is None:
        raise ProjectError(f"{path}: {where} has no metadata['montage']", _HINT)
    if clip.source_range is None:
        raise ProjectError(f"{path}: {where} has no source range", _HINT)
    ref = clip.media_reference
    kind = str(_field(meta, "kind", path, where))
    text = str(_field(meta, "text", path, where))
    if isinstance(ref, otio.schema.ExternalReference):
        media = _media_path(ref.target_url)
    elif isinstance(ref, otio.schema.GeneratorReference):
        media = ""
        if ref.generator_kind == CARD_GENERATOR:
            text = str(ref.parameters.get("text", text))
    else:
        media = str(meta.get("media", ""))
    frames = _frames(clip.source_range.duration, rate, path, where)
    if frames <= 0:
        raise ProjectError(f"{path}: {where} is {frames} frames long", _HINT)
    return EditDecision(
        shot_id=str(_field(meta, "shot_id", path, where)),
        text=text,
        source=str(_field(meta, "source", path, where)),
        kind=kind,
        media=media,
        source_in=_frames(clip.source_range.start_time, rate, path, where),
        frames=frames,
        score=float(_field(meta, "score", path, where)),
        library_shot=str(_field(meta, "library_shot", path, where)),
        reason=str(_field(meta, "reason", path, where)),
        costs=tuple((str(k), float(v)) for k, v in meta.get("costs", ())),
        bends=tuple(str(b) for b in meta.get("bends", ())),
        runner_up=str(meta.get("runner_up", "")),
        decided_by=str(meta.get("decided_by", "")),
        provenance=tuple(sorted((str(k), str(v)) for k, v in dict(meta.get("provenance", {})).items())),
        confidence=_number(meta.get("confidence")),
        bar=_number(meta.get("bar")),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _load(path: Path):
    """The Timeline in ``path`` and its montage metadata; ProjectError when it is not one."""
    otio = _otio()
    if not path.is_file():
        raise ProjectError(f"{path}: timeline file not found",
                           "run the montage step first, or pass the path of an existing .otio")
    try:
        timeline = otio.adapters.read_from_file(str(path), adapter_name="otio_json")
    except Exception as exc:  # OTIO raises its own and ValueError/JSON errors alike
        raise ProjectError(f"{path}: not an OpenTimelineIO JSON file ({exc})", _HINT) from exc
    if not isinstance(timeline, otio.schema.Timeline):
        raise ProjectError(f"{path}: holds a {type(timeline).__name__}, not a Timeline", _HINT)
    meta = timeline.metadata.get("montage")
    if meta is None:
        raise ProjectError(f"{path}: timeline has no metadata['montage'] (not written by montage?)",
                           _HINT)
    return timeline, meta


def read_soundtrack(path: Path) -> Soundtrack | None:
    """The narration and music tracks of an ``.otio`` file written by :func:`write_timeline`
    (relative media taken relative to the file), or None when it has neither."""
    otio = _otio()
    path = Path(path)
    timeline, meta = _load(path)
    rate = _parse_rate(_field(meta, "rate", path, "timeline"), path)
    lines: list[VoiceLine] = []
    music, clips = "", []
    for track in timeline.tracks:
        if track.kind != otio.schema.TrackKind.Audio or track.name not in (NARRATION_TRACK, MUSIC_TRACK):
            continue
        for i, item in enumerate(track):
            if not isinstance(item, otio.schema.Clip):
                continue
            where = f"{track.name} clip {i} ({item.name!r})"
            ref = item.media_reference
            if not isinstance(ref, otio.schema.ExternalReference):
                raise ProjectError(f"{path}: {where} names no media file", _HINT)
            media = str((path.parent / _media_path(ref.target_url)).absolute())
            start = _frames(track.range_of_child_at_index(i).start_time, rate, path, where)
            frames = _frames(item.source_range.duration, rate, path, where)
            source_in = _frames(item.source_range.start_time, rate, path, where)
            info = item.metadata.get("montage", {})
            if track.name == NARRATION_TRACK:
                lines.append(VoiceLine(str(info.get("shot_id", item.name)), str(info.get("text", "")),
                                       media, start, frames, float(info.get("speech", frames / rate))))
            else:
                if music and media != music:
                    raise ProjectError(f"{path}: {where} plays {media}, not {music}",
                                       "the music track holds one file")
                music = media
                clips.append(MusicClip(start, source_in, frames))
    if not lines and not clips:
        return None
    return Soundtrack(rate=rate, lines=tuple(lines), music=music, music_clips=tuple(clips))


def read_timeline(path: Path) -> EditDecisionList:
    """Read an ``.otio`` file written by :func:`write_timeline` (perhaps edited since)."""
    otio = _otio()
    path = Path(path)
    timeline, meta = _load(path)
    where = "timeline"
    rate = _parse_rate(_field(meta, "rate", path, where), path)
    width = int(_field(meta, "width", path, where))
    height = int(_field(meta, "height", path, where))
    videos = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    if len(videos) != 1:
        raise ProjectError(f"{path}: expected one video track, found {len(videos)}", _HINT)
    decisions = []
    for i, item in enumerate(videos[0]):
        if not isinstance(item, otio.schema.Clip):
            raise ProjectError(f"{path}: item {i} of the video track is a "
                               f"{type(item).__name__}; only clips are supported", _HINT)
        decisions.append(_decision(item, rate, path, i))
    return EditDecisionList(rate=rate, width=width, height=height, decisions=tuple(decisions))
