"""index (floor 4): building and keeping a library's index.

Owns: the build (``build``: what changed, analysis, embedding, one commit; ``outcome``: its
report), the metadata store (``store``: SQLite), the vectors (``vectors``: FAISS, exact or HNSW;
``largevectors``: IVF-PQ with the rows on disk), the library's calibration (``calibration``, with
its ``probes``: what any raw score of a query means in this library, kept with the vectors),
what changed since the last run (``changes``), one writer at a time (``lock``), where an index
lives (``location``), the files it skipped and why (``skips``) and the engines that run a build
(``engines``: local, Ray). May import: ``embed``, ``analysis``, ``media``, ``retrieval.types``,
``planner``.
A new vector store goes here beside ``vectors``; a new indexing engine in ``engines/``.
"""
from __future__ import annotations

from .build import INDEX_VERSION, IndexReport, build_index
from .engines import ENGINES, index_with
from .skips import report_dict, skipped_in, summary_lines

__all__ = ["ENGINES", "INDEX_VERSION", "IndexReport", "build_index", "index_with", "report_dict",
           "skipped_in", "summary_lines"]
