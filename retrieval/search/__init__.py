"""search (floor 5): opening an index and ranking its shots for written queries.

Owns: opening and checking a built index (``footage.FootageIndex``), how one query ranks the
shots (``ranking``: keywords and embedding), the candidates handed to the optimizer
(``candidates``), checks on a query (``queries``) and contact sheets of hits (``sheet``). May
import every other room of ``retrieval`` and ``planner``. A new ranking term goes in ``ranking``.
"""
from __future__ import annotations

from .candidates import DEFAULT_MODE, MODES, candidates_for_plan, hits_to_json, search_library
from .footage import FootageIndex, open_index, search_embedder, skipped_files
from .queries import check_query
from .sheet import write_sheet

__all__ = [
    "DEFAULT_MODE", "MODES", "FootageIndex", "candidates_for_plan", "check_query",
    "hits_to_json", "open_index", "search_embedder", "search_library", "skipped_files",
    "write_sheet",
]
