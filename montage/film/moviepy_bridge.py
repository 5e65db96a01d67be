"""The cut as a moviepy clip, for Python users who compose further (titles, effects, overlays).

``moviepy_clip(project)`` reads the project's ``edit.otio`` and builds the same sequence with
moviepy: each library clip trimmed to its frames and fitted (letterboxed) to the film's size,
stills held for their length (without the film's slow pan), title cards drawn by the same
card painter as the film. Sound: the footage's own. Narration and music are tracks of the
edit (see :mod:`montage.film.soundtrack`); they are left to the caller, who may add them with
moviepy's audio clips. moviepy is optional (``pip install 'montage[moviepy]'``) and imported
here only, when the bridge is used: importing montage never loads it.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from generator.placeholder import render_card
from planner.errors import ExportError

from montage.film.export import project_timeline
from montage.film.timeline import read_timeline


def _moviepy():
    try:
        import moviepy
    except ImportError:
        raise ExportError("the moviepy bridge needs moviepy",
                          "pip install 'montage[moviepy]' (moviepy 2)") from None
    return moviepy


def moviepy_clip(project: Path | str):
    """The project's current cut (a project folder, or an ``edit.otio``) as a moviepy
    ``VideoClip`` of the film's size and length; close it when done (it holds file readers)."""
    mp = _moviepy()
    otio_path = project_timeline(Path(project))
    edl = read_timeline(otio_path)
    size = (edl.width, edl.height)
    cards = otio_path.parent / "cache" / "moviepy"
    parts = []
    for i, d in enumerate(edl.decisions):
        seconds = float(Fraction(d.frames) / edl.rate)
        if d.kind == "card":
            cards.mkdir(parents=True, exist_ok=True)
            picture = mp.ImageClip(str(render_card(d.text, *size, cards / f"card-{i:04d}.png")))
        elif d.kind == "still":
            picture = mp.ImageClip(str(otio_path.parent / d.media))
        else:
            start = float(Fraction(d.source_in) / edl.rate)
            picture = mp.VideoFileClip(str(otio_path.parent / d.media)).subclipped(start, start + seconds)
        scale = min(size[0] / picture.w, size[1] / picture.h)
        fitted = picture.resized(scale).with_position("center")
        parts.append(mp.CompositeVideoClip([fitted], size=size, bg_color=(0, 0, 0))
                     .with_duration(seconds))
    return mp.concatenate_videoclips(parts, method="chain")
