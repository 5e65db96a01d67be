"""Retrieval: index a footage library and rank its shots for written queries.

Rooms, each a sub-package on its own floor (a room imports only the rooms below it):
``media`` (1: files, probing, decoding, cuts, ffmpeg) <- ``analysis`` (2: what a shot looks like:
keyframes, tone, motion, faces, people) <- ``embed`` (3: embedders, their models and registry)
<- ``index`` (4: building and storing an index, vectors, locks, engines) <- ``search`` (5:
opening an index and ranking it). ``types`` holds the plain data that leaves the stage. Other
packages import from here or from a room's ``__init__``, never from a room's modules.
Importing this package is cheap: PyAV, PySceneDetect, OpenCV, dlib, torch, FAISS and the models
load on first use, inside the one module that owns each of them.
"""
from __future__ import annotations

from .embed import Embedder, ImageAnalysis, make_embedder
from .index import IndexReport, build_index
from .media import MediaFile, find_media
from .search import (DEFAULT_MODE, MODES, FootageIndex, candidates_for_plan, hits_to_json,
                     measure_outside, open_index, score_outside, search_library, skipped_files)
from .types import (CandidateSet, Hit, LibraryShot, MeasuredClip, QueryCalibration, ShotCandidates,
                    ShotFeatures)

__all__ = [
    "CandidateSet", "DEFAULT_MODE", "Embedder", "FootageIndex", "Hit", "ImageAnalysis",
    "IndexReport", "LibraryShot", "MODES", "MeasuredClip", "MediaFile", "QueryCalibration",
    "ShotCandidates", "ShotFeatures", "build_index", "candidates_for_plan", "find_media",
    "hits_to_json", "make_embedder", "measure_outside", "open_index", "score_outside",
    "search_library", "skipped_files",
]
