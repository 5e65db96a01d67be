"""A contact sheet of search hits: one row per query, one thumbnail per hit, with its score.

For people who would rather look than read: ``montage search LIB "a cat" --sheet hits.png``.
Each thumbnail is the frame of the shot that best matched the query (its moment), else its
middle frame (the still itself for stills), letterboxed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from planner.errors import MediaError, ProjectError

from retrieval.types import Hit

THUMB_W, THUMB_H = 240, 135
CAPTION_H = 44
HEADER_H = 28
GAP = 8
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM_TEXT = (160, 160, 160)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _thumbnail(root: Path, hit: Hit) -> np.ndarray | None:
    from retrieval.media.decode import read_frames, read_still

    path = Path(root) / hit.shot.path
    try:
        if hit.shot.is_still:
            return read_still(path)
        at = hit.moment if hit.moment is not None else (hit.shot.start + hit.shot.end) / 2
        return read_frames(path, [at])[0]
    except (MediaError, IndexError):
        return None


def write_sheet(root: Path, queries: list[str], results: list[list[Hit]], out: Path) -> Path:
    """Draw the hits of each query into ``out`` (PNG or JPEG by suffix)."""
    from PIL import Image, ImageDraw

    out = Path(out)
    cols = max([len(r) for r in results] + [1])
    width = GAP + cols * (THUMB_W + GAP)
    row_h = HEADER_H + THUMB_H + CAPTION_H + GAP
    sheet = Image.new("RGB", (width, GAP + len(queries) * row_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    big, small = _font(16), _font(12)
    for qi, (query, hits) in enumerate(zip(queries, results)):
        y = GAP + qi * row_h
        draw.text((GAP, y + 4), query if hits else f"{query}  (no hits)", fill=TEXT, font=big)
        for n, hit in enumerate(hits):
            x = GAP + n * (THUMB_W + GAP)
            frame = _thumbnail(root, hit)
            if frame is not None:
                img = Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("RGB")
                ratio = min(THUMB_W / img.width, THUMB_H / img.height)  # fit, up or down
                img = img.resize((max(1, round(img.width * ratio)), max(1, round(img.height * ratio))),
                                 Image.Resampling.BILINEAR)
                sheet.paste(img, (x + (THUMB_W - img.width) // 2,
                                  y + HEADER_H + (THUMB_H - img.height) // 2))
            else:
                draw.rectangle((x, y + HEADER_H, x + THUMB_W, y + HEADER_H + THUMB_H),
                               outline=DIM_TEXT)
                draw.text((x + 8, y + HEADER_H + 8), "unreadable", fill=DIM_TEXT, font=small)
            span = "still" if hit.shot.is_still else f"{hit.shot.start:.1f}-{hit.shot.end:.1f}s"
            if hit.moment is not None:
                span += f" @{hit.moment:.1f}s"
            cy = y + HEADER_H + THUMB_H + 4
            draw.text((x, cy), f"{n + 1}. {hit.score:.3f}  {span}", fill=TEXT, font=small)
            draw.text((x, cy + 16), _fit(hit.shot.path, 36), fill=DIM_TEXT, font=small)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(out)
    except (OSError, ValueError) as exc:
        raise ProjectError(f"cannot write the contact sheet {out}: {exc}",
                           hint="choose a writable path ending in .png or .jpg") from exc
    return out


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else "..." + text[-(n - 3):]
