"""Tone, focus and colour of a shot, measured on its keyframes (and the shared resize helper).

Every number is resolution-independent (frames are scaled to a fixed working size first) and
normalised to 0..1, so a rule weight means the same on a phone clip and on 4K footage. OpenCV
does the pixel work (through :mod:`retrieval.analysis.vision`); motion, faces and people live in their
own modules.
"""
from __future__ import annotations

import numpy as np

from . import vision

WORK_SHORT_SIDE = 256  # frames are scaled down so their shorter side is at most this
HIST_BINS = 8  # per RGB channel
N_COLORS = 5
# sharpness = v / (v + SHARP_HALF), v = variance of the Laplacian of the luma (8-bit units) at
# the working size: a crisp photo scores ~0.8-0.95, a gaussian blur of sigma 2 scores < 0.3.
SHARP_HALF = 150.0


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` resized to ``width`` x ``height`` (area-averaged down, linear up)."""
    h, w = frame.shape[:2]
    return vision.resize(frame, max(1, width), max(1, height),
                         "area" if width * height < w * h else "linear")


def working_size(frame: np.ndarray, short_side: int = WORK_SHORT_SIDE) -> np.ndarray:
    """``frame`` area-averaged down so its shorter side is ``short_side`` (never scaled up:
    upscaling would blur a small frame and make it read as out of focus)."""
    h, w = frame.shape[:2]
    scale = short_side / max(1, min(h, w))
    if scale >= 1.0 - 1e-3:
        return np.ascontiguousarray(frame)
    return vision.resize(frame, max(1, round(w * scale)), max(1, round(h * scale)), "area")


def tone(frames: list[np.ndarray]) -> dict[str, float]:
    """Brightness, contrast, saturation and sharpness, averaged over ``frames`` (RGB uint8)."""
    values: dict[str, list[float]] = {"brightness": [], "contrast": [], "saturation": [],
                                      "sharpness": []}
    for frame in frames:
        small = working_size(frame)
        gray = vision.rgb_to_gray(small)
        hsv = vision.rgb_to_hsv(small)
        v = float(vision.laplacian(gray).var())
        values["brightness"].append(float(gray.mean()) / 255.0)
        values["contrast"].append(float(gray.std()) / 255.0)
        values["saturation"].append(float(hsv[..., 1].mean()) / 255.0)
        values["sharpness"].append(v / (v + SHARP_HALF))
    return {k: round(float(np.mean(v)), 4) if v else 0.0 for k, v in values.items()}


def histogram(frames: list[np.ndarray], bins: int = HIST_BINS) -> tuple[float, ...]:
    """R, G and B histograms of ``bins`` bins each, concatenated, summing to 1 overall."""
    counts = np.zeros((3, bins), np.float64)
    for frame in frames:
        small = working_size(frame, 64)
        for c in range(3):
            counts[c] += np.bincount(((small[..., c].astype(np.int32) * bins) // 256).ravel(),
                                     minlength=bins)[:bins]
    total = counts.sum()
    if total == 0:
        return ()
    return tuple(round(float(x), 5) for x in (counts / total).ravel())


def dominant_colors(frames: list[np.ndarray], n: int = N_COLORS) -> tuple[tuple[int, int, int], ...]:
    """Up to ``n`` representative RGB colours, most common first (median cut, deterministic)."""
    from PIL import Image

    if not frames:
        return ()
    tiles = [working_size(f, 48) for f in frames]
    height = min(t.shape[0] for t in tiles)
    strip = np.concatenate([t[:height] for t in tiles], axis=1)
    img = Image.fromarray(np.ascontiguousarray(strip, dtype=np.uint8)).convert("RGB")
    quant = img.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    palette = quant.getpalette() or []
    counts = sorted(quant.getcolors() or [], key=lambda c: (-c[0], c[1]))
    out: list[tuple[int, int, int]] = []
    for _, idx in counts:
        rgb = tuple(int(v) for v in palette[3 * idx : 3 * idx + 3])
        if len(rgb) == 3 and rgb not in out:
            out.append(rgb)  # type: ignore[arg-type]
    return tuple(out[:n])
