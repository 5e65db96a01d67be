"""MLT XML (``.mlt``: Shotcut, ``melt``) and Kdenlive documents (``.kdenlive``, MLT XML with
Kdenlive's bin and track layout), written here: the OTIO Kdenlive adapter is deprecated by its
authors, rounds times to milliseconds and always declares a 1080p profile.

All positions are integer frames of the profile (the film's exact ``num/den`` rate), so what
``melt`` renders is frame for frame the film. The picture track carries the clips' own sound;
extra audio tracks (narration, music) are playlists of their own, mixed in by ``mix``
transitions.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from math import gcd
from pathlib import Path

from montage.film.export.media import ExportClip, ExportEdit

MLT_VERSION = "7.12.0"
KDENLIVE_DOC_VERSION = "1.1"


def _prop(node: ET.Element, name: str, value: object) -> None:
    ET.SubElement(node, "property", name=name).text = str(value)


def _profile(root: ET.Element, edit: ExportEdit) -> None:
    g = gcd(edit.width, edit.height)
    ET.SubElement(root, "profile", description=f"montage {edit.width}x{edit.height}",
                  width=str(edit.width), height=str(edit.height), progressive="1",
                  sample_aspect_num="1", sample_aspect_den="1",
                  display_aspect_num=str(edit.width // g), display_aspect_den=str(edit.height // g),
                  frame_rate_num=str(edit.rate.numerator),
                  frame_rate_den=str(edit.rate.denominator), colorspace="709")


class _Producers:
    """One producer per media file, numbered in order of first use."""

    def __init__(self, root: ET.Element, kdenlive: bool) -> None:
        self.root, self.kdenlive = root, kdenlive
        self.ids: dict[Path, str] = {}
        self.clips: list[ExportClip] = []

    def get(self, clip: ExportClip) -> str:
        if clip.path not in self.ids:
            pid = f"producer{len(self.ids)}"
            node = ET.SubElement(self.root, "producer", id=pid,
                                 **{"in": "0", "out": str(clip.media_frames - 1)})
            _prop(node, "length", clip.media_frames)
            _prop(node, "eof", "pause")
            _prop(node, "resource", str(clip.path))
            _prop(node, "mlt_service", "avformat-novalidate" if self.kdenlive else "avformat")
            if self.kdenlive:
                _prop(node, "kdenlive:id", self.bin_id(pid))
                _prop(node, "kdenlive:clipname", clip.path.name)
                _prop(node, "kdenlive:folderid", -1)
                _prop(node, "kdenlive:clip_type", 0 if clip.has_audio and clip.has_video
                      else (2 if clip.has_video else 1))
            else:
                _prop(node, "shotcut:caption", clip.path.name)
            self.ids[clip.path] = pid
            self.clips.append(clip)
        return self.ids[clip.path]

    @staticmethod
    def bin_id(pid: str) -> int:
        """Kdenlive's clip id for a producer (ids 0 and 1 are its own folders)."""
        return int(pid.removeprefix("producer")) + 2


def _entry(playlist: ET.Element, pid: str, clip: ExportClip, kdenlive_id: int | None) -> None:
    entry = ET.SubElement(playlist, "entry", producer=pid, **{
        "in": str(clip.source_in), "out": str(clip.source_in + clip.frames - 1)})
    if kdenlive_id is not None:
        _prop(entry, "kdenlive:id", kdenlive_id)


def _playlists(root: ET.Element, edit: ExportEdit, producers: _Producers,
               kdenlive: bool) -> list[tuple[str, str, ET.Element]]:
    """(id, kind, node) of the picture playlist and of each extra audio track's playlist."""
    def kid(clip: ExportClip) -> int | None:
        return producers.bin_id(producers.get(clip)) if kdenlive else None

    for clip in edit.clips:
        producers.get(clip)
    for track in edit.audio:
        for placed in track.clips:
            producers.get(placed.clip)
    out = []
    video = ET.SubElement(root, "playlist", id="playlist0")
    if kdenlive:
        _prop(video, "kdenlive:track_name", "V1")
    else:
        _prop(video, "shotcut:video", 1)
        _prop(video, "shotcut:name", "V1")
    for clip in edit.clips:
        _entry(video, producers.get(clip), clip, kid(clip))
    out.append(("playlist0", "video", video))
    for n, track in enumerate(edit.audio, 1):
        pl = ET.SubElement(root, "playlist", id=f"playlist{n}")
        _prop(pl, "kdenlive:audio_track" if kdenlive else "shotcut:audio", 1)
        _prop(pl, "kdenlive:track_name" if kdenlive else "shotcut:name", track.name or f"A{n + 1}")
        at = 0
        for placed in sorted(track.clips, key=lambda a: a.start):
            if placed.start > at:
                ET.SubElement(pl, "blank", length=str(placed.start - at))
            _entry(pl, producers.get(placed.clip), placed.clip, kid(placed.clip))
            at = max(at, placed.start + placed.clip.frames)
        out.append((f"playlist{n}", "audio", pl))
    return out


def _mix(tractor: ET.Element, b_track: int, kdenlive: bool) -> None:
    t = ET.SubElement(tractor, "transition")
    for name, value in (("a_track", 0), ("b_track", b_track), ("mlt_service", "mix"),
                        ("always_active", 1), ("sum", 1)):
        _prop(t, name, value)
    if kdenlive:
        _prop(t, "internal_added", 237)


def mlt_text(edit: ExportEdit, *, kdenlive: bool = False) -> str:
    """The MLT XML document; ``kdenlive`` adds Kdenlive's bin (``main_bin``) and properties."""
    last = edit.frames - 1
    root = ET.Element("mlt", LC_NUMERIC="C", version=MLT_VERSION, title=edit.name,
                      **({"producer": "main_bin"} if kdenlive else {}))
    _profile(root, edit)
    producers = _Producers(root, kdenlive)
    playlists = _playlists(root, edit, producers, kdenlive)
    if kdenlive:
        bin_ = ET.SubElement(root, "playlist", id="main_bin")
        _prop(bin_, "kdenlive:docproperties.version", KDENLIVE_DOC_VERSION)
        _prop(bin_, "kdenlive:docproperties.decimalPoint", ".")
        _prop(bin_, "xml_retain", 1)
        for clip in producers.clips:
            pid = producers.ids[clip.path]
            entry = ET.SubElement(bin_, "entry", producer=pid,
                                  **{"in": "0", "out": str(clip.media_frames - 1)})
            _prop(entry, "kdenlive:id", producers.bin_id(pid))
    tractor = ET.SubElement(root, "tractor", id="tractor0", title=edit.name,
                            **{"in": "0", "out": str(last)})
    if not kdenlive:
        _prop(tractor, "shotcut", 1)
    else:
        _prop(tractor, "global_feed", 1)
    for n, (pid, kind, _) in enumerate(playlists):
        ET.SubElement(tractor, "track", producer=pid, **({"hide": "video"} if kind == "audio" else {}))
        if n:
            _mix(tractor, n, kdenlive)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_mlt(edit: ExportEdit, edl: object, path: Path) -> None:
    path.write_text(mlt_text(edit), encoding="utf-8")


def write_kdenlive(edit: ExportEdit, edl: object, path: Path) -> None:
    path.write_text(mlt_text(edit, kdenlive=True), encoding="utf-8")
