"""Train the builtin model on a footage library: its own frames, words and faces.

Each indexed library shot gives training clips: for a video, ``frames`` frames ``gap`` seconds
apart at several start times across the shot; for a still, the still held still. A clip's
caption is the shot's index labels (classifier labels and the footage's own words), embedded
with MiniLM like every query; its identity is the largest face's dlib descriptor. Every shot
weighs the same, whether it gave one clip or many.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.types import LibraryShot
from generator.errors import GeneratorModelError
from generator.video import fit_frame

logger = logging.getLogger(__name__)

CLIPS_PER_SHOT = 12  # most clips taken from one video shot
GAP_S = 0.25  # seconds between the frames of a training clip
MARGIN = 1.125  # clips are stored this much larger than the model size, for random crops


@dataclass(frozen=True)
class TrainingSet:
    clips: np.ndarray  # (N, frames, h0, w0, 3) uint8
    text: np.ndarray  # (N, 384) float32, MiniLM of the caption
    ident: np.ndarray  # (N, 128) float32, zeros without a face
    has_id: np.ndarray  # (N,) float32, 1 where a face was seen
    weights: np.ndarray  # (N,) sampling weights: each shot sums to 1
    captions: tuple[str, ...]  # one per shot
    shots: int


@dataclass(frozen=True)
class TrainReport:
    weights: Path
    library: str
    shots: int
    clips: int
    steps: int
    first_loss: float
    last_loss: float
    seconds: float
    parameters: int


def caption(shot: LibraryShot) -> str:
    """The words a shot is known by in the index (labels first, as ranked)."""
    return ", ".join(shot.labels) if shot.labels else Path(shot.path).stem


def clip_times(shot: LibraryShot, frames: int, per_shot: int = CLIPS_PER_SHOT,
               gap: float = GAP_S) -> list[list[float]]:
    """Frame times of the training clips of one video shot, spread across it."""
    span = shot.end - shot.start
    step = min(gap, span / max(1, frames)) if span > 0 else 0.0
    length = step * (frames - 1)
    free = max(0.0, span - length - 1e-3)
    n = max(1, min(per_shot, int(free / max(step, 1e-3)) + 1))
    starts = [shot.start + free * (i + 0.5) / n for i in range(n)]
    return [[s + k * step for k in range(frames)] for s in starts]


def _descriptor(root: Path, shot: LibraryShot, middle: np.ndarray) -> tuple[float, ...] | None:
    if shot.features is not None:
        descs = [d for d in shot.features.face_descriptors if len(d) == 128]
        return tuple(descs[0]) if descs else None
    from retrieval.analysis import detect_faces  # an index without features: look now

    faces = detect_faces(middle)
    return faces[0].descriptor if faces and faces[0].descriptor else None


def collect(root: Path, shots: tuple[LibraryShot, ...], *, width: int, height: int, frames: int,
            per_shot: int = CLIPS_PER_SHOT, progress: bool = True) -> TrainingSet:
    """Decode the training clips of every shot (unreadable files are skipped with a warning)."""
    from planner.errors import MediaError
    from retrieval.media import read_frames, read_still
    from retrieval.embed import encode_texts

    w0, h0 = round(width * MARGIN), round(height * MARGIN)
    clips, shot_of, idents, captions = [], [], [], []
    for n, shot in enumerate(shots):
        path = Path(root) / shot.path
        try:
            if shot.is_still:
                groups = [[read_still(path)] * frames]
            else:
                times = clip_times(shot, frames, per_shot)
                flat = read_frames(path, [t for g in times for t in g])
                groups = [flat[i:i + frames] for i in range(0, len(flat), frames)]
        except MediaError as exc:
            logger.warning("skipped %s for training: %s", shot.id, exc.message)
            continue
        groups = [g for g in groups if len(g) == frames]
        if not groups:
            continue
        desc = _descriptor(root, shot, groups[len(groups) // 2][frames // 2])
        k = len(captions)
        captions.append(caption(shot))
        idents.append(desc)
        for g in groups:
            clips.append(np.stack([fit_frame(f, w0, h0) for f in g]))
            shot_of.append(k)
        if progress:
            print(f"\r[generator] reading shots {n + 1}/{len(shots)}", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    if not clips:
        raise GeneratorModelError(f"no readable shots to train on in {root}",
                                  "check that the library holds readable videos or stills")
    vectors = encode_texts(captions)
    shot_of_a = np.asarray(shot_of)
    counts = np.bincount(shot_of_a, minlength=len(captions)).astype(np.float64)
    ident = np.zeros((len(clips), 128), np.float32)
    has = np.zeros(len(clips), np.float32)
    for i, k in enumerate(shot_of):
        if idents[k] is not None:
            ident[i] = idents[k]
            has[i] = 1.0
    return TrainingSet(clips=np.stack(clips), text=vectors[shot_of_a], ident=ident, has_id=has,
                       weights=1.0 / counts[shot_of_a], captions=tuple(captions),
                       shots=len(captions))


def train(library: Path, out: Path, *, minutes: float = 10.0, max_steps: int = 100_000,
          config=None, batch: int = 4, lr: float = 2e-3, seed: int = 0,
          progress: bool = True, index: bool = True, embedder: str = "proxy") -> TrainReport:
    """Index ``library`` (incremental), train a fresh model for ``minutes``, save it to ``out``."""
    import torch

    from generator.dit import DiT, DiTConfig, count_parameters, fit, save_weights
    from retrieval import build_index
    from retrieval import open_index
    from retrieval.media import check_root

    root = check_root(Path(library))
    if minutes <= 0:
        raise GeneratorModelError(f"--minutes must be positive, got {minutes}")
    started = time.monotonic()
    if index:
        build_index(root, embedder, progress=progress)
    shots = open_index(root).shots
    cfg = config or DiTConfig()
    data = collect(root, shots, width=cfg.width, height=cfg.height, frames=cfg.frames,
                   progress=progress)
    torch.manual_seed(seed)
    model = DiT(cfg)
    last = [0.0]

    def on_step(step: int, loss: float) -> None:
        last[0] = loss
        if progress and step % 10 == 0:
            left = minutes * 60 - (time.monotonic() - t0)
            print(f"\r[generator] step {step}  loss {loss:.4f}  {max(0, left):5.0f} s left ",
                  end="", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    result = fit(model, data.clips, data.text, data.ident, data.has_id, data.weights,
                 seconds=minutes * 60, max_steps=max_steps, batch=batch, lr=lr, seed=seed,
                 on_step=on_step)
    if progress:
        print(file=sys.stderr)
    meta = {"library": str(root.resolve()), "shots": data.shots, "clips": len(data.clips),
            "steps": result.steps, "minutes": minutes, "batch": batch, "lr": lr, "seed": seed,
            "losses": [round(x, 5) for x in result.losses], "train_seconds": round(result.seconds, 1),
            "captions": list(data.captions)}
    save_weights(model, Path(out), meta)
    return TrainReport(weights=Path(out), library=str(root), shots=data.shots,
                       clips=len(data.clips), steps=result.steps,
                       first_loss=result.losses[0] if result.losses else float("nan"),
                       last_loss=result.losses[-1] if result.losses else float("nan"),
                       seconds=time.monotonic() - started, parameters=count_parameters(model))
