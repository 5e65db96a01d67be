"""Motion, camera movement and shakiness of a shot, from sparse optical flow on a few frames.

At a few anchor times in a shot, three consecutive frames are compared: corners are tracked
with pyramidal Lucas-Kanade (forward and back, so bad tracks are dropped) and a similarity
transform is fitted with RANSAC. The transform is the camera (the background moves with it);
the mean track length is all motion, the subject's included. The change of the camera's
velocity between the two consecutive pairs is jitter: a smooth pan has none, a hand-held
camera has a lot.

Units are per second and relative to the frame diagonal, so they do not depend on resolution
or frame rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import vision

ANCHORS = (0.2, 0.5, 0.8)  # where in a shot the frame triplets are taken (fractions)
WORK_WIDTH = 320
MIN_TRACKS = 8
# Thresholds (share of the frame diagonal per second; zoom: relative scale change per second).
PAN_MIN = 0.04  # slower than this is "static" (a 640x360 frame: ~1 px a frame at 25 fps)
ZOOM_MIN = 0.04
HANDHELD_RATIO = 0.5  # per-pair camera speeds this much above their mean vector: no direction
JITTER_SCALE = 0.25  # stability = exp(-jitter / JITTER_SCALE)


@dataclass(frozen=True)
class Motion:
    """What the flow says about one shot."""

    motion: float  # mean track speed, frame diagonals per second
    camera: str  # one of retrieval.types.CAMERA_MOVES
    stability: float  # 1 = steady .. 0 = very shaky
    pan: tuple[float, float] = (0.0, 0.0)  # mean camera velocity (x, y), diagonals / s
    zoom: float = 0.0  # mean relative scale change per second (> 0: zooming in)


STILL = Motion(0.0, "static", 1.0)


def motion_times(start: float, end: float, fps: float) -> list[list[float]]:
    """The frame-triplet times to decode for a shot: ``[[t, t+1/fps, t+2/fps], ...]``."""
    if fps <= 0 or end - start < 3.0 / fps:
        return []
    step = 1.0 / fps
    anchors = ANCHORS if end - start >= 1.0 else (0.5,)
    out = []
    for f in anchors:
        t = start + f * (end - start)
        t = min(t, end - 2.5 * step)
        out.append([t, t + step, t + 2 * step])
    return out


def flow_gray(frame: np.ndarray) -> np.ndarray:
    """An RGB frame as the flow's input: grey, at most WORK_WIDTH wide; a 2-D (already grey,
    already that small) frame passes as it is."""
    if frame.ndim == 2:
        return frame
    h, w = frame.shape[:2]
    gray = vision.rgb_to_gray(frame)
    if w > WORK_WIDTH:
        gray = vision.resize(gray, WORK_WIDTH, max(1, round(h * WORK_WIDTH / w)), "area")
    return gray


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """(camera displacement of the centre (x, y), zoom factor - 1, mean track length) in
    pixels of ``a``; None when the frames have too little texture to track."""
    p0 = vision.good_features(a, max_corners=200, quality=0.01, min_distance=7)
    if p0 is None or len(p0) < MIN_TRACKS:
        return None
    params = {"window": 21, "levels": 3, "max_iter": 30, "eps": 0.01}
    p1, st1 = vision.track_points(a, b, p0, **params)
    back, st2 = vision.track_points(b, a, p1, **params)
    good = (st1.ravel() == 1) & (st2.ravel() == 1) & (
        np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 1.0)
    if good.sum() < MIN_TRACKS:
        return None
    q0, q1 = p0.reshape(-1, 2)[good], p1.reshape(-1, 2)[good]
    flow = float(np.linalg.norm(q1 - q0, axis=1).mean())
    m = vision.fit_similarity(q0, q1, threshold=1.5)
    if m is None:
        return np.zeros(2), 0.0, flow
    h, w = a.shape[:2]
    centre = np.array([w / 2.0, h / 2.0, 1.0])
    shift = m @ centre - centre[:2]
    scale = math.hypot(m[0, 0], m[1, 0])
    return shift, scale - 1.0, flow


def analyse_motion(triplets: list[list[np.ndarray]], fps: float) -> Motion:
    """Motion of one shot from its frame triplets (see :func:`motion_times`): RGB frames, or
    grey ones from :func:`flow_gray`."""
    if not triplets or fps <= 0:
        return STILL
    velocities, zooms, speeds, jitters = [], [], [], []
    for frames in triplets:
        grays = [flow_gray(f) for f in frames]
        h, w = grays[0].shape[:2]
        diag = math.hypot(w, h)
        pairs = [_pair(grays[i], grays[i + 1]) for i in range(len(grays) - 1)]
        vs = []
        for p in pairs:
            if p is None:
                continue
            shift, zoom, flow = p
            v = shift * fps / diag
            vs.append(v)
            velocities.append(v)
            zooms.append(zoom * fps)
            speeds.append(flow * fps / diag)
        if len(vs) == 2:
            jitters.append(float(np.linalg.norm(vs[1] - vs[0])))
    if not velocities:
        return STILL
    mean_v = np.mean(velocities, axis=0)
    mean_zoom = float(np.mean(zooms))
    jitter = float(np.mean(jitters)) if jitters else 0.0
    stability = math.exp(-jitter / JITTER_SCALE)
    camera = classify_camera(mean_v, mean_zoom,
                             float(np.mean([np.linalg.norm(v) for v in velocities])), jitter)
    return Motion(round(float(np.mean(speeds)), 4), camera, round(stability, 4),
                  (round(float(mean_v[0]), 4), round(float(mean_v[1]), 4)), round(mean_zoom, 4))


def classify_camera(mean_v: np.ndarray, mean_zoom: float, mean_speed: float,
                    jitter: float) -> str:
    """The dominant camera movement. Content moving left means the camera pans right; content
    moving down (image y grows downward) means it tilts up; content growing means zoom in."""
    speed = float(np.linalg.norm(mean_v))
    if abs(mean_zoom) >= ZOOM_MIN and abs(mean_zoom) >= speed:
        return "zoom_in" if mean_zoom > 0 else "zoom_out"
    shaky = mean_speed >= PAN_MIN and (speed < HANDHELD_RATIO * mean_speed or jitter > speed)
    if shaky:
        return "handheld"
    if speed < PAN_MIN:
        return "static"
    vx, vy = float(mean_v[0]), float(mean_v[1])
    if abs(vx) >= abs(vy):
        return "pan_right" if vx < 0 else "pan_left"
    return "tilt_up" if vy > 0 else "tilt_down"
