"""Embedders by name: an index records which one made its vectors, and a search rebuilds it.

Building is cheap: each implementation is imported when asked for, and its weights load on
first use, so a warm re-index that embeds nothing never loads a model. A new embedder is one
module beside :mod:`retrieval.embed.proxy3` plus one branch in :func:`make_embedder` and
:func:`canonical_name`.
"""
from __future__ import annotations

from planner.errors import ModelError

from .base import PROXY_NAME, PROXY_V3_NAME, Embedder

AVAILABLE = ("proxy", PROXY_V3_NAME, "clip:<model>:<pretrained tag or local .pt>")


def make_embedder(name: str = "proxy", **options) -> Embedder:
    """Build an embedder by name: "proxy" / PROXY_NAME, "clip" or "clip:<model>:<pretrained>".

    ``options`` go to the embedder's constructor (e.g. ``cache_dir``, ``pretrained``).
    """
    key = (name or "").strip()
    if key in ("proxy", PROXY_NAME):
        from .proxy4 import ConceptEmbedder

        return ConceptEmbedder(**options)
    if key == PROXY_V3_NAME:
        from .proxy3 import ProxyEmbedder

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
    if key == PROXY_V3_NAME:
        return PROXY_V3_NAME
    if key.startswith("clip:"):
        from .clip import clip_name

        parts = key.split(":", 2)
        return clip_name(parts[1] or None, parts[2] if len(parts) == 3 else None)
    if key == "clip":
        from .clip import clip_name

        return clip_name(None, None)
    return key
