"""Thin typed wrappers over OpenCV: the one module that imports ``cv2``.

Tone (features.py) and optical flow (motion.py) need OpenCV's pixel routines. Keeping the
import here means one place decides how a missing or broken OpenCV is reported (a
:class:`ModelError` with the install hint), one place to look when an OpenCV upgrade changes a
signature, and ``import retrieval`` stays cheap: cv2 is imported on first use, never at module
import. PySceneDetect (detect.py) uses OpenCV internally; that is
its business.

Every function takes and returns numpy arrays and plain Python values, does exactly what the
cv2 call it wraps does (no rescaling, no clipping, no defaults that differ from the callers'),
and works on contiguous uint8 images.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np

from planner.errors import ModelError

_HINT = "pip install 'opencv-python-headless>=4.9,<5'"  # as pyproject.toml pins it

Interpolation = Literal["area", "linear"]


@lru_cache(maxsize=1)
def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ModelError(f"OpenCV (cv2) cannot be imported: {exc}", hint=_HINT) from exc
    return cv2


def resize(image: np.ndarray, width: int, height: int, interpolation: Interpolation) -> np.ndarray:
    """``image`` scaled to exactly ``width`` x ``height`` pixels; "area" averages (for shrinking),
    "linear" interpolates (for enlarging)."""
    cv2 = _cv2()
    flag = cv2.INTER_AREA if interpolation == "area" else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=flag)


def rgb_to_gray(image: np.ndarray) -> np.ndarray:
    """Luma (BT.601 weights) of an RGB uint8 image, as a 2-D uint8 array."""
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def rgb_to_hsv(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 image in OpenCV's 8-bit HSV (H 0..179, S and V 0..255)."""
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)


def laplacian(gray: np.ndarray) -> np.ndarray:
    """The 3x3 Laplacian of a grey image, in float64 (its variance measures focus)."""
    cv2 = _cv2()
    return cv2.Laplacian(gray, cv2.CV_64F)


def good_features(gray: np.ndarray, *, max_corners: int, quality: float,
                  min_distance: float) -> np.ndarray | None:
    """Shi-Tomasi corners of a grey image as float32 ``(n, 1, 2)`` (x, y); None when none."""
    return _cv2().goodFeaturesToTrack(gray, maxCorners=max_corners, qualityLevel=quality,
                                      minDistance=min_distance)


def track_points(a: np.ndarray, b: np.ndarray, points: np.ndarray, *, window: int,
                 levels: int, max_iter: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``points`` of grey frame ``a`` followed into ``b`` by pyramidal Lucas-Kanade:
    (their positions in ``b``, status: 1 where the point was found)."""
    cv2 = _cv2()
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, max_iter, eps)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(a, b, points, None, winSize=(window, window),
                                                maxLevel=levels, criteria=criteria)
    return moved, status


def fit_similarity(src: np.ndarray, dst: np.ndarray, *, threshold: float) -> np.ndarray | None:
    """The 2x3 similarity transform (rotation, uniform scale, shift) taking ``src`` points to
    ``dst``, fitted with RANSAC (inliers within ``threshold`` px); None when it cannot be fitted."""
    cv2 = _cv2()
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                       ransacReprojThreshold=threshold)
    return m


def region_sizes(mask: np.ndarray) -> np.ndarray:
    """Pixel counts of the 4-connected regions of a boolean mask (as ``scipy.ndimage.label``
    finds them), background excluded."""
    cv2 = _cv2()
    n, _, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(mask, np.uint8),
                                                      connectivity=4)
    return stats[1:n, cv2.CC_STAT_AREA]


def region_labels(mask: np.ndarray) -> np.ndarray:
    """The 4-connected regions of a boolean mask as an int32 label image (0: background)."""
    cv2 = _cv2()
    _, labels = cv2.connectedComponents(np.ascontiguousarray(mask, np.uint8), connectivity=4)
    return labels


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (any dtype OpenCV blurs: uint8, float32) blurred by a Gaussian of ``sigma`` px."""
    return _cv2().GaussianBlur(np.ascontiguousarray(image), (0, 0), sigmaX=float(sigma))


def warp_affine(image: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` mapped by the 2x3 ``matrix`` (output pixel <- input pixel: the inverse map)
    into ``width`` x ``height``, bilinear, edges replicated: a sub-pixel camera move (a
    whole-pixel crop judders when it moves slowly)."""
    cv2 = _cv2()
    return cv2.warpAffine(np.ascontiguousarray(image), np.asarray(matrix, np.float64),
                          (int(width), int(height)),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


__all__ = ["fit_similarity", "gaussian_blur", "good_features", "laplacian", "region_labels",
           "region_sizes", "resize", "rgb_to_gray", "rgb_to_hsv", "track_points", "warp_affine"]
