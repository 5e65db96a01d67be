"""FCPXML 1.9 (Final Cut Pro, DaVinci Resolve), written here rather than by the OTIO adapter,
whose time maths its maintainers call broken (it writes an empty ``frameDuration`` at 29.97).

Every time is an exact rational number of seconds built from integer frames and the film's
``Fraction`` rate: frame ``f`` at ``num/den`` fps is ``f*den/num s``, so a 29.97 film gets
``frameDuration="1001/30000s"`` and no rounding anywhere. Each media file is one ``asset``
(with a ``media-rep`` naming the file), each clip one ``asset-clip`` on the spine; extra audio
tracks (narration, music) become clips connected below the spine on lanes -1, -2, ...
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

from montage.film.export.media import ExportClip, ExportEdit

VERSION = "1.9"


SRC_FRAME_RATES = {Fraction(24000, 1001): "23.98", Fraction(30000, 1001): "29.97",
                   Fraction(48000, 1001): "47.95", Fraction(60000, 1001): "59.94"}


def _conform_rate(rate: Fraction) -> str:
    """FCPXML's name for a source rate (``conform-rate``'s ``srcFrameRate``), "" if it has none."""
    if rate in SRC_FRAME_RATES:
        return SRC_FRAME_RATES[rate]
    return str(rate.numerator) if rate.denominator == 1 and rate in (24, 25, 30, 48, 50, 60) else ""


def seconds(frames: int, rate: Fraction) -> str:
    """``frames`` at ``rate`` as FCPXML time: ``1001/30000s`` for one frame at 29.97."""
    num = frames * rate.denominator
    if num % rate.numerator == 0:
        return f"{num // rate.numerator}s"
    return f"{num}/{rate.numerator}s"


class _Resources:
    """Formats and assets, one id each (``r1``, ``r2``...), shared by the clips that use them."""

    def __init__(self, root: ET.Element, edit: ExportEdit) -> None:
        self.node = ET.SubElement(root, "resources")
        self.edit = edit
        self.formats: dict[tuple[int, int, Fraction], str] = {}
        self.assets: dict[Path, str] = {}
        self.sequence_format = self.format(edit.width, edit.height, edit.rate)

    def _id(self) -> str:
        return f"r{len(self.formats) + len(self.assets) + 1}"

    def format(self, width: int, height: int, rate: Fraction) -> str:
        key = (width, height, rate)
        if key not in self.formats:
            ref = self._id()
            ET.SubElement(self.node, "format", id=ref, frameDuration=seconds(1, rate),
                          width=str(width), height=str(height))
            self.formats[key] = ref
        return self.formats[key]

    def asset(self, clip: ExportClip) -> str:
        if clip.path not in self.assets:
            rate = self.edit.rate
            attrs = {"name": clip.path.name, "start": "0s",
                     "duration": seconds(clip.media_frames, rate),
                     "hasVideo": "1" if clip.has_video else "0",
                     "hasAudio": "1" if clip.has_audio else "0"}
            if clip.has_video:
                attrs["format"] = self.format(clip.width, clip.height, clip.media_rate)
            if clip.has_audio:
                attrs["audioSources"] = "1"
            ref = self._id()
            self.assets[clip.path] = ref
            node = ET.SubElement(self.node, "asset", id=ref, **attrs)
            ET.SubElement(node, "media-rep", kind="original-media", src=clip.path.as_uri())
        return self.assets[clip.path]


def fcpxml_text(edit: ExportEdit) -> str:
    """The whole document: resources, then library > event > project > sequence > spine."""
    rate = edit.rate
    root = ET.Element("fcpxml", version=VERSION)
    res = _Resources(root, edit)
    for clip in edit.clips:
        res.asset(clip)
    for track in edit.audio:
        for placed in track.clips:
            res.asset(placed.clip)
    library = ET.SubElement(root, "library")
    event = ET.SubElement(library, "event", name=edit.name)
    project = ET.SubElement(event, "project", name=edit.name)
    sequence = ET.SubElement(project, "sequence", format=res.sequence_format,
                             duration=seconds(edit.frames, rate), tcStart="0s", tcFormat="NDF",
                             audioLayout="stereo", audioRate="48k")
    spine = ET.SubElement(sequence, "spine")
    starts = edit.starts()
    spine_clips = []
    for clip, start in zip(edit.clips, starts):
        spine_clips.append(ET.SubElement(
            spine, "asset-clip", ref=res.asset(clip), name=clip.name, offset=seconds(start, rate),
            start=seconds(clip.source_in, rate), duration=seconds(clip.frames, rate),
            tcFormat="NDF", **({"audioRole": "dialogue"} if clip.has_audio else {})))
        ET.SubElement(spine_clips[-1], "note").text = clip.text
        conform = _conform_rate(clip.media_rate)
        if clip.has_video and clip.media_rate != rate and conform:
            # footage at another rate plays at its own speed (frames sampled), as in the film
            ET.SubElement(spine_clips[-1], "conform-rate", scaleEnabled="0",
                          srcFrameRate=conform)
    for lane, track in enumerate(edit.audio, 1):
        for placed in track.clips:
            # a connected clip hangs from the spine clip under its start, in that clip's time
            i = max(j for j, s in enumerate(starts) if s <= placed.start)
            parent = edit.clips[i]
            offset = parent.source_in + placed.start - starts[i]
            c = placed.clip
            ET.SubElement(spine_clips[i], "asset-clip", ref=res.asset(c), name=c.name,
                          lane=str(-lane), offset=seconds(offset, rate),
                          start=seconds(c.source_in, rate), duration=seconds(c.frames, rate),
                          audioRole=track.name or "music")
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n{body}\n'


def write_fcpxml(edit: ExportEdit, edl: object, path: Path) -> None:
    path.write_text(fcpxml_text(edit), encoding="utf-8")
