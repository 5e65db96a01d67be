"""People, found by OpenCV's HOG + linear SVM pedestrian detector (weights ship in OpenCV 4.x).

ImageNet has no person class, so the proxy embedder learns about people here. The detector
crashes on images smaller than its 64x128 window plus padding, so small frames are scaled up
first; large ones are scaled down to keep it fast.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import vision

MAX_WIDTH = 640
MIN_HEIGHT = 256  # at least twice the 128 px window, so a person filling the frame fits
MIN_WIDTH = 160
MIN_WEIGHT = 0.8  # SVM margin below this is dropped: 0.5-0.76 were false positives on the
# skimage motorcycle and rocket stills; recall is low either way (faces are the stronger cue)
NMS_OVERLAP = 0.4


@lru_cache(maxsize=1)
def _detector():
    """The HOG people detector, built once (ModelError when this OpenCV lacks it)."""
    return vision.hog_people_detector()


def detect_people(frame: np.ndarray) -> list[tuple[int, int, int, int, float]]:
    """People in an RGB frame as ``(x, y, w, h, weight)`` in the frame's pixels, tallest first."""
    h, w = frame.shape[:2]
    scale = min(MAX_WIDTH / w, 1.0)
    scale = max(scale, MIN_HEIGHT / h, MIN_WIDTH / w)
    img = np.ascontiguousarray(frame, dtype=np.uint8)
    if abs(scale - 1.0) > 1e-3:
        img = vision.resize(img, max(1, round(w * scale)), max(1, round(h * scale)),
                            "area" if scale < 1 else "linear")
    gray = vision.rgb_to_gray(img)
    rects, weights = vision.hog_detect(_detector(), gray, stride=8, padding=8, scale=1.05)
    if len(rects) == 0:
        return []
    weights = np.ravel(weights).astype(float)
    boxes = [[int(v) for v in r] for r in rects]
    out = []
    for i in vision.nms_boxes(boxes, weights.tolist(), min_score=MIN_WEIGHT,
                              max_overlap=NMS_OVERLAP):
        x, y, bw, bh = boxes[i]
        out.append((int(x / scale), int(y / scale), int(bw / scale), int(bh / scale),
                    round(float(weights[i]), 3)))
    return sorted(out, key=lambda b: -b[3])
