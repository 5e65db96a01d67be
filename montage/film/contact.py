"""A contact sheet of the film: one frame from the middle of each shot, with its sentence.

People check an edit faster by looking than by reading a report; `montage make` writes
`contact.png` into the project folder.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from retrieval.media import read_frames

from montage.optimize import EditDecisionList


def write_contact_sheet(film: Path, edl: EditDecisionList, path: Path, *, columns: int = 4,
                        thumb_width: int = 320) -> Path:
    """Decode the middle frame of every shot of `film` and lay them out with their text."""
    times = [float((start + d.frames / 2) / edl.rate) for start, d in zip(edl.starts(), edl.decisions)]
    frames = read_frames(film, times)
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
        if d.source != "library":
            label += f" [{d.source}]"
        else:
            label += f" [{Path(d.media).name} {d.score:.2f}]"
        for k, line in enumerate(textwrap.wrap(label, 44)[:4]):
            draw.text((x + 4, y + thumb_h + 2 + 15 * k), line, fill="black", font=font)
    tmp = path.with_name(path.name + ".partial.png")
    sheet.save(tmp)
    tmp.replace(path)
    return path
