"""search (floor 5): opening an index and ranking its shots for written queries.

Owns: opening and checking a built index (``footage.FootageIndex``), how one query ranks the
shots (``ranking``: keywords and embedding), the candidates handed to the optimizer
(``candidates``), checks on a query (``queries``), contact sheets of hits (``sheet``) and clips from outside
the library measured and scored as its shots are (``outside``: generated clips). May
import every other room of ``retrieval`` and ``planner``. A new ranking term goes in ``ranking``.
"""
from __future__ import annotations

from .candidates import DEFAULT_MODE, MODES, candidates_for_plan, hits_to_json, search_library
from .footage import FootageIndex, open_index, search_embedder, skipped_files
from .outside import measure_outside, score_outside
from .queries import check_query
from .sheet import write_sheet

__all__ = [
    "DEFAULT_MODE", "MODES", "FootageIndex", "candidates_for_plan", "check_query",
    "hits_to_json", "measure_outside", "open_index", "score_outside", "search_embedder",
    "search_library", "skipped_files",
    "write_sheet",
]
