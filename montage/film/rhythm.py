"""A picture of the film's rhythm: shot lengths, shot scales and brightness over time (PNG).

Drawn with Pillow (no plotting library): three bands over one time axis. Shots come from
the edit, scale and brightness from the chosen clips' features (``candidates.json``); a clip
without features or a title card is drawn grey ("unknown").
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from retrieval.types import CandidateSet, ShotFeatures

from montage.optimize import EditDecisionList

WIDTH, BAND, MARGIN, LABEL = 1200, 110, 16, 170
SCALE_ROWS = ("wide", "medium", "close-up", "unknown")
COLOURS = {"video": (70, 130, 200), "still": (90, 170, 120), "card": (200, 150, 60)}
GREY, INK, GRID = (170, 170, 170), (30, 30, 30), (225, 225, 225)


def clip_features(candidates: CandidateSet) -> dict[str, ShotFeatures | None]:
    """Library shot id -> its features, from every hit in the candidate set."""
    return {h.shot.id: h.shot.features for c in candidates.shots for h in c.hits}


def rhythm_plot(edl: EditDecisionList, features: Mapping[str, ShotFeatures | None],
                path: Path) -> Path:
    """Write the rhythm plot of ``edl`` to ``path`` (PNG) and return the path."""
    from PIL import Image, ImageDraw, ImageFont

    total = max(1, edl.frames)
    height = 3 * BAND + 4 * MARGIN + 24
    img = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, x1 = LABEL, WIDTH - MARGIN

    def x(frame: int) -> float:
        return x0 + (x1 - x0) * frame / total

    bands = [MARGIN + k * (BAND + MARGIN) for k in range(3)]
    for top, name in zip(bands, ("shot length", "scale", "brightness")):
        draw.rectangle([x0, top, x1, top + BAND], outline=GRID)
        draw.text((MARGIN, top + BAND // 2 - 6), name, fill=INK, font=font)
    longest = max((d.frames for d in edl.decisions), default=1)
    starts = edl.starts()
    points = []
    for d, s in zip(edl.decisions, starts):
        left, right = x(s), x(s + d.frames)
        f = features.get(d.library_shot) if d.library_shot else None
        top = bands[0] + BAND * (1 - d.frames / longest)
        draw.rectangle([left, top, max(left + 1, right - 1), bands[0] + BAND],
                       fill=COLOURS.get(d.kind, GREY))
        row = SCALE_ROWS.index(f.scale) if f is not None and f.scale in SCALE_ROWS else 3
        y = bands[1] + (row + 0.5) * BAND / len(SCALE_ROWS)
        draw.line([left, y, right, y], fill=GREY if row == 3 else INK, width=5)
        if f is not None:
            yb = bands[2] + BAND * (1 - f.brightness)
            points += [(left, yb), (right, yb)]
        elif len(points) >= 2:
            draw.line(points, fill=(220, 120, 40), width=2)
            points = []
        draw.line([left, bands[0], left, bands[2] + BAND], fill=GRID)
    if len(points) >= 2:
        draw.line(points, fill=(220, 120, 40), width=2)
    for row, name in enumerate(SCALE_ROWS):
        draw.text((x0 - 62, bands[1] + (row + 0.5) * BAND / len(SCALE_ROWS) - 6), name, fill=GREY, font=font)
    draw.text((x0 - 62, bands[0] + BAND - 14), "0 s", fill=GREY, font=font)
    draw.text((x0 - 62, bands[0] + 2), f"{float(longest / edl.rate):.1f} s", fill=GREY, font=font)
    draw.text((x0 - 62, bands[2] + 2), "white", fill=GREY, font=font)
    draw.text((x0 - 62, bands[2] + BAND - 14), "black", fill=GREY, font=font)
    seconds = edl.seconds
    step = max(1, round(seconds / 10))
    axis = bands[2] + BAND + 4
    for t in range(0, int(seconds) + 1, step):
        xt = x(round(t * edl.rate))
        draw.text((xt, axis), f"{t}s", fill=INK, font=font)
    draw.text((MARGIN, axis), f"{len(edl.decisions)} shots", fill=INK, font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", compress_level=3)
    return path
