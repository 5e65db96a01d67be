"""The embedder contract (images and queries into one vector space) and what embedders share.

The embedders themselves (:mod:`retrieval.embed.proxy3`, :mod:`retrieval.embed.clip`) build on this module;
:mod:`retrieval.embed.registry` names them by string and imports one only when asked.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np



@dataclass(frozen=True)
class ImageAnalysis:
    """One model pass over images: their vectors (N, dim) and top labels for each."""

    vectors: np.ndarray
    labels: tuple[tuple[str, ...], ...]


@runtime_checkable
class Embedder(Protocol):
    """Maps footage frames and written queries into one space where cosine = relevance."""

    name: str  # identifies the model and its settings, e.g. "proxy-v2"

    @property
    def dim(self) -> int: ...

    def embed_images(self, images: list[np.ndarray], texts: list[str]) -> np.ndarray:
        """L2-normalised float32 (N, dim); ``texts[i]`` is image i's own words ("" if none)."""

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """L2-normalised float32 (len(queries), dim)."""

    def describe(self, image: np.ndarray) -> list[str]:
        """Human-readable top labels for one image (for reports)."""

    def analyse(self, images: list[np.ndarray], texts: list[str]) -> ImageAnalysis:
        """Vectors and labels in one pass, so indexing runs the model once per frame.

        An embedder may also take ``hints=[((phrase, weight), ...) per image]``: what the
        face and people detectors saw, for a model that cannot see people itself (the proxy).
        """


def analyse_with(emb: Embedder, frames: list[np.ndarray], texts: list[str], hints: list,
                 facts: list) -> ImageAnalysis:
    """``emb.analyse`` with what it takes: the analysis workers' people facts (proxy-v4), the
    people hints (proxy-v3), or neither (CLIP). The index and a clip measured outside the
    library (:mod:`retrieval.search.outside`) both embed through here, so they agree."""
    import inspect

    takes = inspect.signature(emb.analyse).parameters
    if "facts" in takes:
        return emb.analyse(frames, texts, hints=hints, facts=facts)
    if "hints" in takes:
        return emb.analyse(frames, texts, hints=hints)
    return emb.analyse(frames, texts)


_threads: int | None = None  # set by set_torch_threads; None: every core


def set_torch_threads(n: int) -> int:
    """Set the threads model inference may use (process-wide); returns the previous count.

    On a busy 2-core machine two OpenMP threads spin against each other (MiniLM took 30x
    longer on one sentence), so the indexer gives the models only the cores its workers leave
    free: torch's intra-op threads if torch is already imported (it is not imported for this),
    and the ONNX Runtime sessions made afterwards (:func:`inference_threads`).
    """
    global _threads
    previous = inference_threads()
    _threads = max(1, int(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_threads)
    return previous


def apply_torch_threads() -> None:
    """Give torch the threads :func:`set_torch_threads` set, if it has been imported since."""
    if _threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_threads)


def inference_threads() -> int:
    """The threads set by :func:`set_torch_threads`, else torch's if it is imported, else the
    cores."""
    if _threads:
        return _threads
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    return os.cpu_count() or 1


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


def blend_text(visual: np.ndarray, text_vectors: np.ndarray, has_text: np.ndarray,
               visual_weight: float) -> np.ndarray:
    """Mix each image vector with its footage-text vector where there is text, renormalised."""
    mixed = np.where(
        has_text[:, None], visual_weight * visual + (1.0 - visual_weight) * text_vectors, visual
    )
    return normalise(mixed)


def default_cache_dir() -> Path:
    """Where model-derived caches live: $MONTAGE_CACHE_DIR, else the user cache dir."""
    if os.environ.get("MONTAGE_CACHE_DIR"):
        return Path(os.environ["MONTAGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "montage"


def save_array_atomic(path: Path, array: np.ndarray) -> None:
    """Write a .npy so a crash or a parallel writer never leaves a half file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def read_plain(path: Path) -> object | None:
    """Plain data kept by :func:`keep_plain`, or None when the file is missing or damaged.
    marshal, not pickle: it builds only dicts, tuples, strings and numbers, and the file is the
    user's own cache (a damaged one is made again by the caller)."""
    import marshal

    try:
        return marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None


def keep_plain(path: Path, data: object) -> None:
    """Write plain data for :func:`read_plain` whole under a temporary name, then rename it, so
    a parallel run never reads half of it; an unwritable cache costs only time."""
    import marshal

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


PROXY_NAME = "proxy-v4"  # the default: retrieval.embed.proxy4 (WordNet mass, mediapipe people, colour)
PROXY_V3_NAME = "proxy-v3"  # retrieval.embed.proxy3: v2 wide frames as 3 crops; v3 people hints mixed in
