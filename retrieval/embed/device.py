"""Which torch device the models run on: ``--device auto|cpu|cuda`` (auto: CUDA when present).

The command line sets ``MONTAGE_DEVICE`` once (so the CLIP embedder, the diffusers generator
and a local Ray's workers all see it); code that builds a model calls :func:`resolve_device`.
Asking for CUDA where there is none is an error, not a silent fall back to the CPU.
"""
from __future__ import annotations

import os

from planner.errors import ModelError

DEVICE_ENV = "MONTAGE_DEVICE"
CHOICES = ("auto", "cpu", "cuda")


def resolve_device(asked: str | None = None) -> str:
    """"cuda[:N]" or "cpu" for ``asked`` (None: ``$MONTAGE_DEVICE``, else auto)."""
    wanted = (asked or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if wanted == "cpu":
        return "cpu"
    if wanted != "auto" and not wanted.startswith("cuda"):
        raise ModelError(f"unknown device {wanted!r}", hint="use one of: " + ", ".join(CHOICES))
    import torch

    if torch.cuda.is_available():
        return "cuda" if wanted == "auto" else wanted
    if wanted == "auto":
        return "cpu"
    raise ModelError(f"--device {wanted} asked for, but torch sees no CUDA device here",
                     hint="drop --device (auto picks the CPU here), or run on a machine with an "
                          "NVIDIA GPU and a CUDA build of torch")


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


__all__ = ["CHOICES", "DEVICE_ENV", "is_cuda", "resolve_device"]
