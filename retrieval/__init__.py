"""Retrieval: index a footage library (shots -> vectors -> FAISS) and rank its shots for queries.

Importing this package is cheap: PyAV, PySceneDetect, torch, FAISS and the models load on first
use, inside the one module that owns each of them.
"""
from __future__ import annotations

from .embed import Embedder, ImageAnalysis, make_embedder
from .index import FootageIndex, IndexReport, build_index, open_index
from .library import MediaFile, find_media
from .search import candidates_for_plan, hits_to_json, search_library
from .types import CandidateSet, Hit, LibraryShot, ShotCandidates

__all__ = [
    "CandidateSet", "Embedder", "FootageIndex", "Hit", "ImageAnalysis", "IndexReport",
    "LibraryShot", "MediaFile", "ShotCandidates", "build_index", "candidates_for_plan",
    "find_media", "hits_to_json", "make_embedder", "open_index", "search_library",
]
