"""Indexing engines: ``local`` (this machine's processes, :func:`retrieval.index.build.build_index`)
and ``ray`` (a Ray cluster, :mod:`retrieval.index.engines.ray_engine`). Both write the same index."""
from __future__ import annotations

from pathlib import Path

from .errors import EngineError

ENGINES = ("local", "ray")


def index_with(engine: str, root: Path, embedder: str = "proxy", *, address: str | None = None,
               **options):
    """Index ``root`` with the named engine; returns its :class:`retrieval.index.build.IndexReport`."""
    if engine == "local":
        if address:
            raise EngineError("--address applies to --engine ray only",
                              hint="drop --address, or add --engine ray")
        from ..build import build_index

        return build_index(root, embedder, **options)
    if engine == "ray":
        from .ray_engine import build_index_ray

        return build_index_ray(root, embedder, address=address, **options)
    raise EngineError(f"unknown engine {engine!r}", hint="use one of: " + ", ".join(ENGINES))


__all__ = ["ENGINES", "EngineError", "index_with"]
