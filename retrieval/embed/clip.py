"""CLIP image-text embeddings through open_clip: the one module that imports open_clip.

No CLIP weights ship in any offline package, so there is no default checkpoint: the user names
a pretrained tag (downloaded by open_clip, needs internet once) or a local checkpoint file.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from planner.errors import ModelError

from .base import (ImageAnalysis, blend_text, default_cache_dir, normalise,
                   save_array_atomic)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-32"
VISUAL_WEIGHT = 0.7  # vs. the CLIP text embedding of the footage's own words
TOP_LABELS = 5
LABEL_MIN_PROB = 0.05
LABEL_PROMPT = "a photo of a {}."
CUDA_BATCH = 128  # images per forward pass on a GPU (fp16 ViT-B/32: well under 2 GB)


def clip_name(model: str | None, pretrained: str | None) -> str:
    return f"clip:{model or DEFAULT_MODEL}:{pretrained}"


def _looks_like_path(pretrained: str) -> bool:
    return "/" in pretrained or "\\" in pretrained or pretrained.endswith(
        (".pt", ".pth", ".bin", ".safetensors"))


class ClipEmbedder:
    """open_clip model on CUDA when available (half precision, batches of CUDA_BATCH), else the
    CPU; ``device`` or ``--device`` chooses (:func:`retrieval.embed.device.resolve_device`)."""


    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str | None = None, *,
                 device: str | None = None, cache_dir: Path | str | None = None,
                 batch_size: int = 16, vocabulary: tuple[str, ...] | None = None) -> None:
        if not pretrained:
            raise ModelError(
                f"CLIP model {model} needs weights: no CLIP weights ship with montage, and "
                "downloading them needs internet",
                hint="give --clip-pretrained TAG (downloaded once, needs internet; e.g. "
                     "laion2b_s34b_b79k) or --clip-pretrained /path/to/checkpoint.pt (as a name: "
                     f"clip:{model}:TAG_OR_PATH), or use the offline default 'proxy'",
            )
        if _looks_like_path(pretrained) and not Path(pretrained).expanduser().is_file():
            raise ModelError(f"CLIP checkpoint not found: {pretrained}",
                             hint="give the path of a saved open_clip state dict (.pt)")
        self.model_name = model
        self.pretrained = str(Path(pretrained).expanduser()) if _looks_like_path(pretrained) else pretrained
        self.name = clip_name(model, pretrained)
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.batch_size = batch_size
        self._vocabulary = tuple(vocabulary) if vocabulary else None  # label names; ImageNet's
        self._loaded = None  # (model, preprocess, tokenizer, device)
        self._label_vectors: np.ndarray | None = None

    @property
    def dim(self) -> int:
        import open_clip

        config = open_clip.get_model_config(self.model_name)
        if config is None:
            raise ModelError(f"unknown CLIP model {self.model_name!r}",
                             hint="available: " + ", ".join(open_clip.list_models()[:40]) + ", ...")
        return int(config["embed_dim"])

    def _load(self):
        if self._loaded is not None:
            return self._loaded
        import open_clip
        import torch

        from .device import is_cuda, resolve_device

        dim = self.dim  # validates the model name first
        device = resolve_device(self.device)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name, pretrained=self.pretrained, device=device,
                require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(self.model_name)
        except Exception as exc:  # open_clip raises RuntimeError/OSError/HF errors alike
            raise ModelError(
                f"cannot load CLIP {self.model_name} weights {self.pretrained!r}: {exc}",
                hint="check the tag (open_clip.list_pretrained()) and your internet, or give a "
                     "local checkpoint path",
            ) from exc
        if is_cuda(device):  # half precision on a GPU: twice the batch per memory, tensor cores
            model = model.half()
            self.batch_size = max(self.batch_size, CUDA_BATCH)
        logger.info("loaded CLIP %s (%s, %d-d) on %s", self.model_name, self.pretrained, dim, device)
        self._loaded = (model.eval(), preprocess, tokenizer, device)
        return self._loaded

    def _encode_text(self, texts: list[str]) -> np.ndarray:
        import torch

        model, _, tokenizer, device = self._load()
        out = []
        for i in range(0, len(texts), 256):
            with torch.inference_mode():
                tokens = tokenizer(texts[i : i + 256]).to(device)
                out.append(model.encode_text(tokens).float().cpu().numpy())
        return normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def _encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        model, preprocess, _, device = self._load()
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([preprocess(Image.fromarray(np.asarray(im, dtype=np.uint8)))
                                 for im in images[i : i + self.batch_size]])
            batch = batch.to(device, dtype=next(model.parameters()).dtype, non_blocking=True)
            with torch.inference_mode():
                out.append(model.encode_image(batch).float().cpu().numpy())
        return normalise(np.concatenate(out))

    def vocabulary(self) -> tuple[str, ...]:
        """The label names ``describe`` chooses from (ImageNet's 1000 unless given)."""
        if self._vocabulary is None:
            from .proxy3 import label_names

            self._vocabulary = label_names()
        return self._vocabulary

    def label_vectors(self) -> np.ndarray:
        """CLIP text embeddings of the label prompts, cached per checkpoint (slow on a CPU once:
        1000 prompts through the text tower)."""
        if self._label_vectors is not None:
            return self._label_vectors
        names = self.vocabulary()
        ident = self.pretrained
        if _looks_like_path(ident):
            st = Path(ident).stat()
            ident = f"{Path(ident).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        key = hashlib.sha1("\n".join([self.model_name, ident, LABEL_PROMPT, *names]).encode())
        path = self.cache_dir / f"clip-labels-{key.hexdigest()[:16]}.npy"
        vectors = np.load(path) if path.is_file() else None
        if vectors is None or vectors.shape != (len(names), self.dim):
            vectors = self._encode_text([LABEL_PROMPT.format(n) for n in names])
            try:
                save_array_atomic(path, vectors)
            except OSError as exc:
                logger.warning("cannot cache CLIP label embeddings in %s: %s", path, exc)
        self._label_vectors = vectors
        return vectors

    def analyse(self, images: list[np.ndarray], texts: list[str],
                hints: list[tuple[tuple[str, float], ...]] | None = None) -> ImageAnalysis:
        """``hints`` (people found by other detectors) are not needed: CLIP sees people."""
        if len(texts) != len(images):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts")
        if not images:
            return ImageAnalysis(np.zeros((0, self.dim), np.float32), ())
        visual = self._encode_images(images)
        has_text = np.array([bool(t.strip()) for t in texts])
        text_vecs = np.zeros_like(visual)
        if has_text.any():
            unique = sorted({t for t in texts if t.strip()})
            encoded = dict(zip(unique, self._encode_text(unique)))
            for i, t in enumerate(texts):
                if t.strip():
                    text_vecs[i] = encoded[t]
        vectors = blend_text(visual, text_vecs, has_text, VISUAL_WEIGHT)
        logits = 100.0 * visual @ self.label_vectors().T
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        names = self.vocabulary()
        labels = []
        for row in probs:
            order = np.argsort(-row)[:TOP_LABELS]
            keep = [names[int(j)] for r, j in enumerate(order) if r == 0 or row[j] >= LABEL_MIN_PROB]
            labels.append(tuple(dict.fromkeys(keep)))
        return ImageAnalysis(vectors, tuple(labels))

    def embed_images(self, images: list[np.ndarray], texts: list[str]) -> np.ndarray:
        return self.analyse(images, texts).vectors

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        return self._encode_text(list(queries))

    def describe(self, image: np.ndarray) -> list[str]:
        return list(self.analyse([image], [""]).labels[0])
