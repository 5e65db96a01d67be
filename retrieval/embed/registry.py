"""Embedders by name: an index records which one made its vectors, and a search rebuilds it.

Building is cheap: each implementation is imported when asked for, and its weights load on
first use, so a warm re-index that embeds nothing never loads a model. A new embedder is one
module beside :mod:`retrieval.embed.proxy3` plus one branch in :func:`make_embedder` and
:func:`canonical_name`. A catalogue embedder (``retrieval.models``, e.g. "clip-vit-b32") is
named by the index as ``NAME@REVISION`` (12 characters of the commit pulled), so vectors of
one revision are never searched with another.
"""
from __future__ import annotations

from planner.errors import ModelError

from .base import PROXY_NAME, PROXY_V3_NAME, Embedder

AVAILABLE = ("proxy", PROXY_V3_NAME, "clip:<model>:<pretrained tag or local .pt>")


def _catalogue_entry(key: str):
    """The catalogue embedder ``key`` names ("clip-vit-b32" or "clip-vit-b32@<revision>"),
    and the revision asked for ("" for any); None when ``key`` is no catalogue embedder."""
    from retrieval.models import catalogue

    name, _, revision = key.partition("@")
    e = catalogue().get(name)
    return (e, revision) if e is not None and e.kind == "embedder" else None


def installed_embedder(key: str):
    """(entry, installed) for a catalogue embedder name; a ModelError saying what to pull when
    it is not installed, or when the index asks for a revision that is not the one installed."""
    from retrieval.models import manual_hint, status

    e, revision = _catalogue_entry(key)
    st = status(e)
    if st.installed is None:
        made = f"the index was made by {key}, but " if revision else ""
        raise ModelError(f"{made}{e.name} is not installed"
                         + (f" ({st.problem})" if st.problem else ""),
                         hint=f"montage models pull {e.name}; " + manual_hint(e))
    if revision and st.installed.short != revision:
        raise ModelError(f"the index was made by {e.name} at revision {revision}, but revision "
                         f"{st.installed.short} is installed",
                         hint=f"re-embed the library with the installed one: montage index "
                              f"LIBRARY --embedder {e.name} (stored keyframes: no decoding)")
    return e, st.installed


def make_embedder(name: str = "proxy", **options) -> Embedder:
    """Build an embedder by name: "proxy" / PROXY_NAME, "clip" or "clip:<model>:<pretrained>",
    or a catalogue embedder ("clip-vit-b32", as installed; "clip-vit-b32@REV": that revision).

    ``options`` go to the embedder's constructor (e.g. ``cache_dir``, ``pretrained``).
    """
    key = (name or "").strip()
    if _catalogue_entry(key) is not None:
        from .clip import ClipEmbedder

        e, found = installed_embedder(key)
        return ClipEmbedder.from_installed(f"{e.name}@{found.short}", found.folder, **options)
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
        hint="available: " + ", ".join(AVAILABLE + catalogue_embedders()),
    )


def prepare_embedder(name: str) -> None:
    """Load ``name`` once and cache what its first use would compute (a CLIP's text vectors of
    its 1000 label names: minutes of a 2-core CPU), so the first index does not pay for it."""
    emb = make_embedder(name)
    if hasattr(emb, "label_vectors"):
        emb.label_vectors()


def catalogue_embedders() -> tuple[str, ...]:
    from retrieval.models import catalogue

    return tuple(e.name for e in catalogue().values() if e.kind == "embedder")


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
    """The ``name`` the embedder built from ``spec`` will have, without building it (a
    catalogue embedder: its installed revision, read from the disk)."""
    key = (spec or "").strip()
    if _catalogue_entry(key) is not None:
        e, found = installed_embedder(key)
        return f"{e.name}@{found.short}"
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
