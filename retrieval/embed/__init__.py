"""embed (floor 3): images and words into one vector space, and the models that do it.

Owns: the embedder contract (``base.Embedder``) and the registry of embedders by name
(``registry``); each embedder (``proxy4``: the offline default; ``proxy3``; ``clip``: open_clip)
with its models (``classifier``: EfficientNet-Lite0 in ONNX Runtime, ``text``: MiniLM in numpy,
``wordnet``); the words of a shot (``labels``) and keywords (``keywords``: spaCy lemmas); where
torch runs (``device``) and the models warmed while indexing (``warm``); what ``--embedder
auto`` takes (``choice``: the best installed catalogue embedder, else proxy-v4). May import:
``analysis``, ``media``, ``models``, ``retrieval.types``, ``planner``. A new embedder is a
module here implementing ``base.Embedder`` plus its name in ``registry``.
"""
from __future__ import annotations

from .base import Embedder, ImageAnalysis, default_cache_dir
from .choice import AUTO, Choice, auto_embedder, cuda_usable, resolve_embedder
from .device import DEVICE_ENV, resolve_device
from .registry import (canonical_name, catalogue_embedders, embedder_spec, make_embedder,
                       prepare_embedder)
from .text import DIM as TEXT_DIM
from .text import encode_texts

__all__ = [
    "AUTO", "Choice", "DEVICE_ENV", "Embedder", "ImageAnalysis", "TEXT_DIM", "auto_embedder",
    "canonical_name", "catalogue_embedders", "cuda_usable",
    "default_cache_dir", "embedder_spec", "encode_texts", "make_embedder", "prepare_embedder",
    "resolve_device",
    "resolve_embedder",
]
