"""The work of one file on a remote worker: analyse, embed, return a shard.

It runs the local engine's own steps (:func:`retrieval.analysis.analyse.analyse_file`, then the
indexer's embedding of those keyframes), so a distributed index is the index a local run
builds. The embedder is built once per worker process and kept (a Ray worker runs many tasks).
"""
from __future__ import annotations

import os
from pathlib import Path

from retrieval.analysis.analyse import Settings, analyse_file
from retrieval.media.library import MediaFile
from .shards import Shard

_embedders: dict[str, object] = {}

# Tests only: "REL_PATH:MARKER" makes the worker that first takes REL_PATH die (os._exit) after
# creating MARKER, to show that a dead worker's file is run again and nothing else is.
CRASH_ENV = "MONTAGE_TEST_WORKER_CRASH"


def _embedder(spec: str, options: dict, threads: int):
    key = repr((spec, sorted(options.items())))
    emb = _embedders.get(key)
    if emb is None:
        from retrieval.embed.base import set_torch_threads
        from retrieval.embed.registry import make_embedder

        set_torch_threads(threads)
        emb = _embedders[key] = make_embedder(spec, **options)
    return emb


def _crash_for_test(rel: str) -> None:
    spec = os.environ.get(CRASH_ENV, "")
    if not spec or ":" not in spec:
        return
    target, marker = spec.split(":", 1)
    if rel == target and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def index_file(root: str, media: MediaFile, text: str, settings: Settings, spec: str,
               options: dict, threads: int = 1) -> Shard | str:
    """The shard of one file, or why it cannot be read (the file is then skipped, named)."""
    from ..changes import Plan
    from ..build import _Run

    _crash_for_test(media.path)
    analysis = analyse_file(root, media.path, media.kind, settings)
    if analysis.error:
        return analysis.reason
    emb = _embedder(spec, options, threads)
    plan = Plan([media], set(), {}, {}, [], {media.path: text})
    run = _Run(Path(root), None, None, emb, settings, {}, plan, 0.0)
    run._embed([analysis])
    entry = run.fresh[media.path]
    return Shard(entry.record, tuple(entry.shots), tuple(tuple(t) for t in entry.terms),
                 entry.vectors, dict(entry.moments or {}))


__all__ = ["CRASH_ENV", "index_file"]
