"""A contact sheet of the film: one frame from the middle of each shot, with its sentence.

People check an edit faster by looking than by reading a report; `montage make` writes
`contact.png` into the project folder.
"""
from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import numpy as np

from PIL import Image, ImageDraw, ImageFont

from retrieval.media import read_frames

from montage.optimize import EditDecisionList
from montage.film.report import fill_label

THUMB_VERSION = 2  # 2: title cards say "no footage chosen"; bump when clips' pixels change


def write_contact_sheet(film: Path, edl: EditDecisionList, path: Path, *, columns: int = 4,
                        thumb_width: int = 320, cache: Path | None = None) -> Path:
    """Decode the middle frame of every shot of `film` and lay them out with their text.

    ``cache``: a folder of thumbnails kept by what the shot shows (its clip, in-point, length,
    card text and the film's size), so a recut decodes only the shots it changed."""
    times = [float((start + d.frames / 2) / edl.rate) for start, d in zip(edl.starts(), edl.decisions)]
    keys = [_thumb_key(d, edl, thumb_width) for d in edl.decisions]
    frames: list = [None] * len(times)
    if cache is not None:
        for n, key in enumerate(keys):
            try:
                with Image.open(cache / f"{key}.png") as img:
                    frames[n] = np.asarray(img.convert("RGB"))
            except OSError:
                pass
    todo = [n for n, f in enumerate(frames) if f is None]
    for n, frame in zip(todo, read_frames(film, [times[n] for n in todo]) if todo else []):
        frames[n] = np.asarray(Image.fromarray(frame).resize(
            (thumb_width, round(thumb_width * edl.height / edl.width))))
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
                Image.fromarray(frames[n]).save(cache / f"{keys[n]}.png")
            except OSError:
                pass
    thumb_h = round(thumb_width * edl.height / edl.width)
    caption_h = 64
    rows = -(-len(frames) // columns)
    sheet = Image.new("RGB", (columns * thumb_width, rows * (thumb_h + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for n, (frame, d) in enumerate(zip(frames, edl.decisions)):
        x, y = (n % columns) * thumb_width, (n // columns) * (thumb_h + caption_h)
        sheet.paste(Image.fromarray(frame).resize((thumb_width, thumb_h)), (x, y))
        label = f"{n + 1}. {d.text}"
        sd = f" {d.confidence:.1f} sd" if d.confidence is not None else ""
        if d.source == "library":
            label += f" [{Path(d.media).name}{sd or f' {d.score:.2f}'}]"
        elif d.source == "generated":
            label += f" [{fill_label(d)}{sd or f' {d.score:.2f}'}]"
        elif d.source == "placeholder" and sd:
            label += f" [card: best{sd}, bar {d.bar:.1f}]"
        else:
            label += f" [{d.source}{sd}]"
        for k, line in enumerate(textwrap.wrap(label, 44)[:4]):
            draw.text((x + 4, y + thumb_h + 2 + 15 * k), line, fill="black", font=font)
    tmp = path.with_name(path.name + ".partial.png")
    sheet.save(tmp, compress_level=3)  # 2.5x faster than the default 6, 6% larger
    tmp.replace(path)
    return path


def _thumb_key(d, edl: EditDecisionList, width: int) -> str:
    """What a shot's middle frame depends on: its clip and trim (or card text), the film's
    size, rate and pixels per thumbnail."""
    what = [d.source, d.kind, d.media, d.source_in, d.frames, d.text if d.source != "library" else "",
            edl.width, edl.height, str(edl.rate), width, THUMB_VERSION]
    return hashlib.sha1(repr(what).encode("utf-8")).hexdigest()[:20]
