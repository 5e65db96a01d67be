"""The builtin model's weights file: safetensors with the config and training record inside.

Read here without torch, so building a generator (and `montage generator info`) stays cheap;
the tensors themselves load in generator.dit.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from generator.errors import GeneratorModelError

FORMAT = "montage-dit-1"
_MAX_HEADER = 100_000_000


def read_header(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a montage DiT weights file (ValueError if it is not one).

    safetensors layout: 8 bytes little-endian header length, then a JSON header.
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError("too short for a safetensors file")
        (size,) = struct.unpack("<Q", head)
        if size > _MAX_HEADER:
            raise ValueError("not a safetensors file (header size out of range)")
        try:
            header = json.loads(fh.read(size).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("not a safetensors file (unreadable header)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} weights file")
    return meta


def safetensors_keys(path: Path) -> list[str]:
    """The tensor names of a .safetensors file (header only); GeneratorModelError naming it
    when it is truncated or not a safetensors file."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            return list(f.keys())
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise GeneratorModelError(f"{path} is unreadable or truncated ({first})",
                                  "download or save that file again") from None
