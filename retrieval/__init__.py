"""Retrieval: index a footage library and rank its shots for written queries.

Index: shots (PySceneDetect) -> keyframes and features (tone, focus, colour, motion, faces,
people) -> embeddings -> FAISS vectors + SQLite metadata. Search: keywords and embedding.
Importing this package is cheap: PyAV, PySceneDetect, OpenCV, dlib, torch, FAISS and the models
load on first use, inside the one module that owns each of them.
"""
from __future__ import annotations

from .embed import Embedder, ImageAnalysis
from .registry import make_embedder
from .index import FootageIndex, IndexReport, build_index, open_index
from .library import MediaFile, find_media
from .search import DEFAULT_MODE, MODES, candidates_for_plan, hits_to_json, search_library
from .types import CandidateSet, Hit, LibraryShot, ShotCandidates, ShotFeatures

__all__ = [
    "CandidateSet", "DEFAULT_MODE", "Embedder", "FootageIndex", "Hit", "ImageAnalysis",
    "IndexReport", "LibraryShot", "MODES", "MediaFile", "ShotCandidates", "ShotFeatures",
    "build_index", "candidates_for_plan", "find_media", "hits_to_json", "make_embedder",
    "open_index", "search_library",
]
