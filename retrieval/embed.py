"""The embedder contract (images and queries into one vector space) and the factory.

Embedders are built by name so an index can record which one made its vectors and the search
can rebuild the same one. Building is cheap: weights load on first use, so a warm re-index that
embeds nothing never loads a model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from planner.errors import ModelError

AVAILABLE = ("proxy", "clip:<model>:<pretrained tag or local .pt>")


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


def set_torch_threads(n: int) -> int:
    """Set torch's intra-op threads (process-wide); returns the previous count.

    On a busy 2-core machine two OpenMP threads spin against each other (MiniLM took 30x
    longer on one sentence), so the indexer gives torch only the cores its workers leave free.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    return previous


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


PROXY_NAME = "proxy-v3"  # v2: wide frames also as 3 square crops; v3: people hints mixed in


def make_embedder(name: str = "proxy", **options) -> Embedder:
    """Build an embedder by name: "proxy" / PROXY_NAME, "clip" or "clip:<model>:<pretrained>".

    ``options`` go to the embedder's constructor (e.g. ``cache_dir``, ``pretrained``).
    """
    key = (name or "").strip()
    if key in ("proxy", PROXY_NAME):
        from .proxy import ProxyEmbedder

        return ProxyEmbedder(**options)
    if key == "clip" or key.startswith("clip:"):
        from .clip import ClipEmbedder

        parts = key.split(":", 2)
        if len(parts) >= 2 and parts[1]:
            options.setdefault("model", parts[1])
        if len(parts) == 3 and parts[2]:
            options.setdefault("pretrained", parts[2])
        return ClipEmbedder(**options)
    raise ModelError(
        f"unknown embedder {name!r}",
        hint="available: " + ", ".join(AVAILABLE),
    )


def embedder_spec(embedder: str | None, clip_model: str | None = None,
                  clip_pretrained: str | None = None) -> str | None:
    """The embedder name for command-line options (None: none asked for).

    ``--clip-model`` / ``--clip-pretrained`` imply ``--embedder clip``.
    """
    if clip_model is None and clip_pretrained is None:
        return embedder
    if embedder not in (None, "clip") and not (embedder or "").startswith("clip:"):
        raise ModelError(f"--clip-model and --clip-pretrained apply to --embedder clip, not {embedder}",
                         hint="drop --embedder, or use --embedder clip")
    model = clip_model or ""
    if (embedder or "").startswith("clip:") and not model:
        model = embedder.split(":", 2)[1]
    return f"clip:{model}:{clip_pretrained or ''}"


def canonical_name(spec: str) -> str:
    """The ``name`` the embedder built from ``spec`` will have, without building it."""
    key = (spec or "").strip()
    if key in ("proxy", PROXY_NAME):
        return PROXY_NAME
    if key.startswith("clip:"):
        from .clip import clip_name

        parts = key.split(":", 2)
        return clip_name(parts[1] or None, parts[2] if len(parts) == 3 else None)
    if key == "clip":
        from .clip import clip_name

        return clip_name(None, None)
    return key
