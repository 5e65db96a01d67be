"""The formats OpenTimelineIO writes correctly: ``.otio``, ``.otioz`` (bundle with media),
``.xml`` (Final Cut 7 XML, through the ``otio-fcp-adapter``) and ``.edl`` (CMX 3600, through
the ``otio-cmx3600-adapter``). Each was read back through its adapter and checked clip by
clip (tests/test_export.py); the FCPXML, MLT and Kdenlive writers live in their own modules
because the adapters for those get times or structure wrong.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from montage.film.export.media import ExportClip, ExportEdit
from montage.film.timeline import edl_to_timeline, otio_module
from montage.optimize import EditDecisionList
from planner.errors import ExportError

DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))
ADAPTER_PACKAGES = {"fcp_xml": "otio-fcp-adapter", "cmx_3600": "otio-cmx3600-adapter"}


def _range(otio: Any, start: int, frames: int, rate: float) -> Any:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, rate),
                                   otio.opentime.RationalTime(frames, rate))


def _reference(otio: Any, clip: ExportClip, rate: float) -> Any:
    return otio.schema.ExternalReference(target_url=clip.path.as_uri(),
                                         available_range=_range(otio, 0, clip.media_frames, rate))


def export_timeline(edit: ExportEdit, edl: EditDecisionList, *, audio: bool = True) -> Any:
    """montage's timeline (with its metadata) where every clip names a media file; with
    ``audio``, an ``A1`` track carries the clips' own sound and the edit's extra audio tracks
    (narration, music) follow as ``A2``..."""
    otio = otio_module()
    rate = float(edit.rate)
    timeline = edl_to_timeline(edl, edit.name)
    video = timeline.tracks[0]
    for item, clip in zip(video, edit.clips):
        item.media_reference = _reference(otio, clip, rate)
    if not audio:
        return timeline
    tracks = [otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)]
    for item, clip in zip(video, edit.clips):
        if clip.has_audio:
            tracks[0].append(item.clone())
        else:
            tracks[0].append(otio.schema.Gap(source_range=_range(otio, 0, clip.frames, rate)))
    for n, extra in enumerate(edit.audio, 2):
        track = otio.schema.Track(name=extra.name or f"A{n}", kind=otio.schema.TrackKind.Audio)
        at = 0
        for placed in sorted(extra.clips, key=lambda a: a.start):
            if placed.start < at:
                raise ExportError(f"audio track {extra.name}: clip {placed.clip.name} overlaps "
                                  "the one before it", "place the track's clips one after another")
            if placed.start > at:
                track.append(otio.schema.Gap(source_range=_range(otio, 0, placed.start - at, rate)))
            c = placed.clip
            track.append(otio.schema.Clip(name=c.name, media_reference=_reference(otio, c, rate),
                                          source_range=_range(otio, c.source_in, c.frames, rate)))
            at = placed.start + c.frames
        tracks.append(track)
    for track in tracks:
        timeline.tracks.append(track)
    return timeline


def _adapter_write(timeline: Any, path: Path, adapter: str, **kwargs: Any) -> None:
    otio = otio_module()
    if adapter not in otio.adapters.available_adapter_names():
        raise ExportError(f"the OpenTimelineIO adapter {adapter!r} is not installed",
                          f"pip install {ADAPTER_PACKAGES.get(adapter, 'opentimelineio')}")
    otio.adapters.write_to_file(timeline, str(path), adapter_name=adapter, **kwargs)


def write_otio(edit: ExportEdit, edl: EditDecisionList, path: Path) -> None:
    _adapter_write(export_timeline(edit, edl), path, "otio_json")


def write_otioz(edit: ExportEdit, edl: EditDecisionList, path: Path) -> None:
    """A zip with the timeline and a copy of every media file (OTIO's own bundle writer)."""
    otio = otio_module()
    path.unlink(missing_ok=True)  # the writer refuses to overwrite; ``path`` is our partial file
    names: dict[str, Path] = {}
    for clip in edit.clips + tuple(a.clip for t in edit.audio for a in t.clips):
        other = names.setdefault(clip.path.name, clip.path)
        if other != clip.path:
            raise ExportError(f"two media files share the name {clip.path.name} ({other} and "
                              f"{clip.path}); an .otioz bundle keeps one folder of media",
                              "rename one of them, or export to .otio (media stay in place)")
    policy = otio.adapters.file_bundle_utils.MediaReferencePolicy.ErrorIfNotFile
    _adapter_write(export_timeline(edit, edl), path, "otioz", media_policy=policy)


def write_fcp7(edit: ExportEdit, edl: EditDecisionList, path: Path) -> None:
    _adapter_write(export_timeline(edit, edl), path, "fcp_xml")


def write_edl(edit: ExportEdit, edl: EditDecisionList, path: Path) -> None:
    """CMX 3600 holds one picture track; the sound tracks stay in the other formats. The
    adapter leaves out the ``FCM`` line, so it is added: at 29.97 and 59.94 the adapter writes
    drop-frame timecode (``;``), which readers only trust with ``FCM: DROP FRAME``."""
    otio = otio_module()
    if "cmx_3600" not in otio.adapters.available_adapter_names():
        raise ExportError("the OpenTimelineIO adapter 'cmx_3600' is not installed",
                          f"pip install {ADAPTER_PACKAGES['cmx_3600']}")
    text = otio.adapters.write_to_string(export_timeline(edit, edl, audio=False),
                                         adapter_name="cmx_3600")
    drop = edit.rate in DROP_FRAME_RATES
    title, _, rest = text.partition("\n")
    fcm = "FCM: DROP FRAME" if drop else "FCM: NON-DROP FRAME"
    path.write_text(f"{title}\n{fcm}\n{rest}", encoding="utf-8")
