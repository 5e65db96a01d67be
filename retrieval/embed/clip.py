"""CLIP image-text embeddings through open_clip: the one module that imports open_clip.

No CLIP weights ship in any offline package, so there is no default checkpoint: the user pulls
a catalogue model (`montage models pull clip-vit-b32`, loaded from the hub cache's snapshot
folder through open_clip's ``local-dir:`` schema, see :meth:`ClipEmbedder.from_installed`),
names a pretrained tag (downloaded by open_clip, needs internet once) or a local checkpoint.
"""
from __future__ import annotations

import hashlib
import logging
import os
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
# On a CPU the image tower runs in ONNX Runtime from a one-time export into the model cache:
# bench/models.py measured it 1.6x torch's speed for ViT-B-32 on 2 cores (5.7 against 3.6
# images/s, load 8), up to 3x for ViT-L-14. MONTAGE_CLIP_TORCH=1 keeps it in torch.
ONNX_EXPORT_VERSION = 1
ONNX_MAX_ERROR = 1e-3  # largest difference of unit vectors from torch accepted at export
TORCH_ENV = "MONTAGE_CLIP_TORCH"


def clip_name(model: str | None, pretrained: str | None) -> str:
    return f"clip:{model or DEFAULT_MODEL}:{pretrained}"


LOCAL_DIR = "local-dir:"  # open_clip's schema for a folder with open_clip_config.json + weights


def _looks_like_path(pretrained: str) -> bool:
    return "/" in pretrained or "\\" in pretrained or pretrained.endswith(
        (".pt", ".pth", ".bin", ".safetensors"))


class ClipEmbedder:
    """open_clip model on CUDA when available (half precision, batches of CUDA_BATCH), else the
    CPU; ``device`` or ``--device`` chooses (:func:`retrieval.embed.device.resolve_device`)."""


    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str | None = None, *,
                 device: str | None = None, cache_dir: Path | str | None = None,
                 batch_size: int = 16, vocabulary: tuple[str, ...] | None = None,
                 name: str | None = None) -> None:
        folder = model.startswith(LOCAL_DIR)
        if folder and not (Path(model[len(LOCAL_DIR):]) / "open_clip_config.json").is_file():
            raise ModelError(f"{model[len(LOCAL_DIR):]} is not an open_clip model folder (no "
                             "open_clip_config.json)", hint="pull the model again")
        if not pretrained and not folder:
            raise ModelError(
                f"CLIP model {model} needs weights: no CLIP weights ship with montage, and "
                "downloading them needs internet",
                hint="pull one (montage models pull clip-vit-b32, then --embedder clip-vit-b32), "
                     "or give --clip-pretrained TAG (downloaded once, needs internet; e.g. "
                     "laion2b_s34b_b79k) or --clip-pretrained /path/to/checkpoint.pt (as a name: "
                     f"clip:{model}:TAG_OR_PATH), or use the offline default 'proxy'",
            )
        if pretrained and _looks_like_path(pretrained) and not Path(pretrained).expanduser().is_file():
            raise ModelError(f"CLIP checkpoint not found: {pretrained}",
                             hint="give the path of a saved open_clip state dict (.pt)")
        self.model_name = model
        self.pretrained = (None if folder else str(Path(pretrained).expanduser())
                           if _looks_like_path(pretrained) else pretrained)
        self.name = name or clip_name(model, pretrained)
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.batch_size = batch_size
        self._vocabulary = tuple(vocabulary) if vocabulary else None  # label names; ImageNet's
        self._loaded = None  # (model, preprocess, tokenizer, device)
        self._visual_onnx = None  # the exported image tower's session (CPU), once made
        self._label_vectors: np.ndarray | None = None

    @classmethod
    def from_installed(cls, name: str, folder: Path, **options) -> "ClipEmbedder":
        """A pulled catalogue model: the snapshot folder (open_clip_config.json and the
        weights), named ``name`` (the catalogue name and the revision: an index made with one
        revision is never searched with another)."""
        return cls(f"{LOCAL_DIR}{folder}", name=name, **options)

    @property
    def dim(self) -> int:
        if self.model_name.startswith(LOCAL_DIR):
            import json

            config = Path(self.model_name[len(LOCAL_DIR):]) / "open_clip_config.json"
            try:
                return int(json.loads(config.read_text(encoding="utf-8"))["model_cfg"]["embed_dim"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"{config} gives no model_cfg.embed_dim ({exc})",
                                 hint="pull the model again") from None
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
                hint=("`montage models check` tells whether the pulled files are whole; pull "
                      "it again" if self.pretrained is None else
                      "check the tag (open_clip.list_pretrained()) and your internet, or give a "
                      "local checkpoint path"),
            ) from exc
        if is_cuda(device):  # half precision on a GPU: twice the batch per memory, tensor cores
            model = model.half()
            self.batch_size = max(self.batch_size, CUDA_BATCH)
        logger.info("loaded CLIP %s (%s, %d-d) on %s", self.model_name, self.pretrained, dim, device)
        self._loaded = (model.eval(), preprocess, tokenizer, device)
        if not is_cuda(device) and os.environ.get(TORCH_ENV, "") != "1":
            self._visual_onnx = self._export_visual(model.eval(), preprocess)
        return self._loaded

    def _ident(self) -> str:
        """What identifies these weights in cache file names (a checkpoint file by its path,
        size and time; a pulled model by its name, which carries the revision)."""
        ident = self.pretrained or self.name
        if self.pretrained and _looks_like_path(ident):
            st = Path(ident).stat()
            ident = f"{Path(ident).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        return f"{self.model_name}|{ident}"

    def _export_visual(self, model, preprocess):
        """The image tower as an ONNX Runtime session, exported once into the model cache and
        checked against torch on a fixed input; None (torch is used, said in a warning) when
        the export fails."""
        import torch

        from .base import inference_threads
        from .classifier import ort_session

        key = hashlib.sha1(f"{self._ident()}|{ONNX_EXPORT_VERSION}".encode()).hexdigest()[:16]
        path = self.cache_dir / f"clip-visual-{key}.onnx"
        if path.is_file():
            try:
                return ort_session(path, inference_threads())
            except Exception as exc:  # noqa: BLE001 - a damaged export is made again
                logger.warning("the exported CLIP image tower %s is unreadable (%s); "
                               "exporting it again", path, exc)
        size = getattr(model.visual, "image_size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        example = torch.from_numpy(np.random.default_rng(0).uniform(
            -2.0, 2.0, (2, 3, size, size)).astype(np.float32))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            import warnings

            path.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model.visual, (example,), str(tmp), dynamo=False,
                                  opset_version=17, input_names=["image"],
                                  output_names=["vector"],
                                  dynamic_axes={"image": {0: "n"}, "vector": {0: "n"}})
            session = ort_session(tmp, inference_threads())
            with torch.inference_mode():
                want = normalise(model.visual(example).float().numpy())
            got = normalise(session.run(None, {"image": example.numpy()})[0])
            error = float(np.abs(want - got).max())
            if error > ONNX_MAX_ERROR:
                raise ValueError(f"it differs from torch by {error:.2g}")
            os.replace(tmp, path)
            logger.info("exported %s's image tower to ONNX once: %s", self.name, path)
            return ort_session(path, inference_threads())
        except Exception as exc:  # noqa: BLE001 - torch still computes the same vectors
            logger.warning("CLIP's image tower runs in torch: its ONNX export failed (%s)",
                           " ".join(str(exc).split())[:200])
            return None
        finally:
            tmp.unlink(missing_ok=True)

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
            if self._visual_onnx is not None:
                out.append(self._visual_onnx.run(None, {"image": batch.numpy()})[0])
                continue
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
        key = hashlib.sha1("\n".join([self._ident(), LABEL_PROMPT, *names]).encode())
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
