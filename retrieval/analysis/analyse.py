"""Everything about one media file that needs no learned embedding: shots, keyframes, features.

:func:`analyse_file` runs in a worker process while the main process embeds, so it takes and
returns plain picklable data and never imports torch. A file that cannot be read comes back
with ``error`` set instead of raising, so one bad file never stops a pool.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.errors import MediaError

from retrieval.types import ShotFeatures
from .people import PeopleFacts
from .scan import (KEYFRAMES, LONG_KEYFRAMES, LONG_SHOT, SHORT_KEYFRAMES, SHORT_SHOT, FLASH,
                   keyframe_fractions)

MAX_FRAME_SIDE = 720  # keyframes are stored scaled down to this longer side (memory, pickling)


@dataclass(frozen=True)
class Settings:
    """What decides the shots and keyframes of a file; an index remembers it."""

    threshold: float
    min_shot: float

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "min_shot": self.min_shot,
                "keyframes": [list(LONG_KEYFRAMES), list(KEYFRAMES), list(SHORT_KEYFRAMES),
                              LONG_SHOT, SHORT_SHOT, FLASH], "features": 5}
        # features 2: keyframe times and vectors are kept (moments), so an index from 1 is rebuilt;
        # 3: faces found by BlazeFace (retrieval.analysis.faces), so no index mixes them with dlib's;
        # 4: video features measured on the keyframes shrunk to MAX_FRAME_SIDE (values move);
        # 5: people counted by BlazePose's detector, not OpenCV's HOG (counts, hints and so
        # proxy-v4's vectors move)


@dataclass(frozen=True)
class FileAnalysis:
    """One file, analysed: its shots, their keyframes (for the embedder) and features."""

    path: str  # relative to the library root
    kind: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    seconds: float = 0.0  # footage duration (0 for stills)
    spans: tuple[tuple[float, float], ...] = ()
    frames: tuple[np.ndarray, ...] = ()  # every shot's keyframes, in shot order
    times: tuple[float, ...] = ()  # where each keyframe was taken (seconds into the file)
    groups: tuple[tuple[int, ...], ...] = ()  # indices into ``frames`` per shot
    features: tuple[ShotFeatures, ...] = ()
    # what mediapipe saw in each of ``frames`` (faces, person mask; measured with the faces):
    # the embedder takes these instead of running the same models again on the indexing process
    facts: tuple[PeopleFacts, ...] = ()
    error: str = ""  # why the file was skipped; "" when it was read
    cpu_seconds: float = 0.0
    reason: str = ""  # what the index stores for a skipped file: "why: what was wrong"


def analyse_file(root: str, rel: str, kind: str, settings: Settings) -> FileAnalysis:
    """Decode, cut into shots and measure one file (``kind`` "": its content decides whether
    it is a video or a still); never raises for a bad file, which comes back with ``error``
    and ``reason``."""
    started = time.process_time()
    try:
        result = _analyse(Path(root), rel, kind, settings)
    except MediaError as exc:
        return _skipped(root, rel, kind, exc.message, getattr(exc, "why", ""))
    except OSError as exc:
        return _skipped(root, rel, kind, f"cannot read {Path(root) / rel}: {exc.strerror or exc}")
    return _with_cpu(result, time.process_time() - started)


def _skipped(root: str, rel: str, kind: str, message: str, why: str = "") -> FileAnalysis:
    """A file that cannot be indexed; its reason drops the message's "cannot read PATH: "
    lead (the index keys the file by its path already)."""
    from retrieval.media.library import UNREADABLE, skip_reason

    detail = message.removeprefix(f"cannot read {Path(root) / rel}: ")
    return FileAnalysis(rel, kind, error=message, reason=skip_reason(why or UNREADABLE, detail))


def _with_cpu(a: FileAnalysis, cpu: float) -> FileAnalysis:
    from dataclasses import replace

    return replace(a, cpu_seconds=round(cpu, 3))


def _analyse(root: Path, rel: str, kind: str, settings: Settings) -> FileAnalysis:
    from retrieval.media.decode import probe, read_still, sniff
    from .motion import STILL, analyse_motion
    from .scan import scan_video

    path = root / rel
    kind = kind or sniff(path)
    if kind == "still":
        image = read_still(path)
        h, w = image.shape[:2]
        feats, facts = measure_shot([image], STILL)
        return FileAnalysis(rel, kind, w, h, 0.0, 0.0, ((0.0, 0.0),), (_shrink(image),), (0.0,),
                            ((0,),), (feats,), facts)
    info = probe(path, kind)
    frames: list[np.ndarray] = []
    key_times: list[float] = []
    spans, groups, features, facts = [], [], [], []
    for shot in scan_video(path, info.duration, info.fps, threshold=settings.threshold,
                           min_shot=settings.min_shot):
        if not shot.keyframes:
            raise MediaError(f"cannot read {path}: no frame of {shot.start:.2f}-{shot.end:.2f} s "
                             "could be decoded", hint="re-export or remove the file")
        small = [_shrink(f) for f in shot.keyframes]
        feats, seen = measure_shot(list(shot.keyframes),
                                   analyse_motion(list(shot.triplets), info.fps), small=small)
        features.append(feats)
        facts += seen
        spans.append((shot.start, shot.end))
        groups.append(tuple(range(len(frames), len(frames) + len(small))))
        frames += small
        key_times += list(shot.times)
    if not spans:
        raise MediaError(f"cannot read {path}: no frame could be decoded",
                         hint="re-export or remove the file")
    return FileAnalysis(rel, kind, info.width, info.height, info.fps, info.duration,
                        tuple(spans), tuple(frames), tuple(key_times), tuple(groups),
                        tuple(features), tuple(facts))


def shot_features(frames: list[np.ndarray], motion, *, face_detector: str = "",
                  small: list[np.ndarray] | None = None) -> ShotFeatures:
    """The features of one shot from its keyframes and its motion: :func:`measure_shot`'s."""
    return measure_shot(frames, motion, face_detector=face_detector, small=small)[0]


def measure_shot(frames: list[np.ndarray], motion, *, face_detector: str = "",
                 small: list[np.ndarray] | None = None
                 ) -> tuple[ShotFeatures, tuple[PeopleFacts, ...]]:
    """The features of one shot from its keyframes and its motion (see each module), and what
    mediapipe saw in each keyframe (measured on the face search's copy of at most 640 px, in
    the same BlazeFace pass; the people count is BlazePose's, the most in any keyframe).

    ``face_detector``: "mediapipe" or "dlib" (default: :data:`retrieval.analysis.faces.DETECTOR`).
    ``small``: the same keyframes already shrunk (:func:`_shrink`, as the index keeps them):
    faces, people, histogram and colours work at 640 px or less, so they take these instead of
    each scaling a 1080p frame down again (four full-size resizes a keyframe where one does;
    their values move a little). Tone keeps the full frames: a second resampling blurs, and
    sharpness fell by 0.06 on a 720p shot.
    """
    from .faces import DETECTOR, FaceScan, shot_scale
    from .features import dominant_colors, histogram, tone

    t = tone(frames)
    frames = small if small is not None else frames
    # Faces: the keyframe with the most faces (then the largest) is the shot's best view.
    best, best_scan, best_faces, best_key = 0, None, [], (-1, -1)
    facts, people = [], 0
    for n, frame in enumerate(frames):
        scan = FaceScan(frame, detector=face_detector or DETECTOR, people=True)
        facts.append(scan.facts)
        people = max(people, scan.people)  # the most in any keyframe
        faces = scan.faces(descriptors=False)
        key = (len(faces), faces[0].height if faces else 0)
        if key > best_key:
            best, best_scan, best_faces, best_key = n, scan, faces, key
    frame = frames[best]
    if best_faces and best_scan is not None:
        best_faces = best_scan.faces(descriptors=True)
    share = best_faces[0].height / frame.shape[0] if best_faces else 0.0
    return ShotFeatures(
        brightness=t["brightness"], contrast=t["contrast"], saturation=t["saturation"],
        sharpness=t["sharpness"], stability=motion.stability, motion=motion.motion,
        camera=motion.camera, histogram=histogram(frames), colors=dominant_colors(frames),
        faces=len(best_faces), face_size=round(float(share), 4),
        scale=shot_scale(share, people), people=people,
        face_descriptors=tuple(f.descriptor for f in best_faces if f.descriptor),
    ), tuple(facts)


def _shrink(frame: np.ndarray) -> np.ndarray:
    """A keyframe no larger than MAX_FRAME_SIDE (the embedders work at 224-256 px anyway)."""
    h, w = frame.shape[:2]
    if max(h, w) <= MAX_FRAME_SIDE:
        return np.ascontiguousarray(frame)
    from .features import resize

    s = MAX_FRAME_SIDE / max(h, w)
    return resize(frame, round(w * s), round(h * s))


def check_models() -> None:
    """Load the face and people detectors once, so a missing model fails before any work."""
    from .faces import _models
    from .people import people, scan

    _models()
    scan(np.zeros((16, 16, 3), np.uint8))
    people(np.zeros((16, 16, 3), np.uint8))


__all__ = ["FileAnalysis", "Settings", "analyse_file", "check_models",
           "keyframe_fractions", "measure_shot", "shot_features"]
