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

from montage.optimize import EditDecision, EditDecisionList
from planner.errors import ProjectError

if TYPE_CHECKING:  # pragma: no cover
    import opentimelineio as otio

CARD_GENERATOR = "montage.title_card"
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
    return otio.schema.Clip(
        name=d.shot_id, media_reference=ref, source_range=source_range,
        metadata={"montage": meta},
    )


def edl_to_timeline(edl: EditDecisionList, name: str = "montage") -> "otio.schema.Timeline":
    """One video track, one clip per decision, in film order."""
    otio = _otio()
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for d in edl.decisions:
        track.append(_clip(d, edl.rate))
    timeline = otio.schema.Timeline(name=name)
    timeline.tracks.append(track)
    timeline.metadata["montage"] = {
        "version": TIMELINE_VERSION,
        "width": int(edl.width),
        "height": int(edl.height),
        "rate": _rate_text(edl.rate),
    }
    return timeline


def write_timeline(edl: EditDecisionList, path: Path, name: str = "montage") -> Path:
    """Write ``edl`` as an ``.otio`` file (atomically: a crash never leaves half a file)."""
    otio = _otio()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # to a string, then written by Python: OTIO's own file writer does not report a
        # failed write (a full disk left a cut-short file that read back as corrupt)
        text = otio.adapters.write_to_string(edl_to_timeline(edl, name), adapter_name="otio_json")
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
    )


def read_timeline(path: Path) -> EditDecisionList:
    """Read an ``.otio`` file written by :func:`write_timeline` (perhaps edited since)."""
    otio = _otio()
    path = Path(path)
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
