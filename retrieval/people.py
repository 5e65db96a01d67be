"""People, found by OpenCV's HOG + linear SVM pedestrian detector (weights ship in OpenCV 4.x).

ImageNet has no person class, so the proxy embedder learns about people here. The detector
crashes on images smaller than its 64x128 window plus padding, so small frames are scaled up
first; large ones are scaled down to keep it fast.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from planner.errors import ModelError

MAX_WIDTH = 640
MIN_HEIGHT = 256  # at least twice the 128 px window, so a person filling the frame fits
MIN_WIDTH = 160
MIN_WEIGHT = 0.8  # SVM margin below this is dropped: 0.5-0.76 were false positives on the
# skimage motorcycle and rocket stills; recall is low either way (faces are the stronger cue)
NMS_OVERLAP = 0.4


@lru_cache(maxsize=1)
def _detector():
    import cv2

    if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
        raise ModelError(f"OpenCV {cv2.__version__} has no HOG people detector",
                         hint="pip install 'opencv-python-headless>=4.9,<5'")
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def detect_people(frame: np.ndarray) -> list[tuple[int, int, int, int, float]]:
    """People in an RGB frame as ``(x, y, w, h, weight)`` in the frame's pixels, tallest first."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(MAX_WIDTH / w, 1.0)
    scale = max(scale, MIN_HEIGHT / h, MIN_WIDTH / w)
    img = np.ascontiguousarray(frame, dtype=np.uint8)
    if abs(scale - 1.0) > 1e-3:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=interp)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    rects, weights = _detector().detectMultiScale(gray, winStride=(8, 8), padding=(8, 8),
                                                  scale=1.05)
    if len(rects) == 0:
        return []
    weights = np.ravel(weights).astype(float)
    boxes = [[int(v) for v in r] for r in rects]
    keep = cv2.dnn.NMSBoxes(boxes, weights.tolist(), MIN_WEIGHT, NMS_OVERLAP)
    out = []
    for i in np.ravel(keep) if len(keep) else []:
        x, y, bw, bh = boxes[int(i)]
        out.append((int(x / scale), int(y / scale), int(bw / scale), int(bh / scale),
                    round(float(weights[int(i)]), 3)))
    return sorted(out, key=lambda b: -b[3])
