"""media (floor 1): the files of a footage library and what is in them as pictures.

Owns: finding a library's media files and the words they carry (``library``, ``tags``), probing
and decoding them (``decode``: PyAV and Pillow), hard cuts (``cuts``: PySceneDetect), and every
ffmpeg process (``ffmpeg``). May import: ``planner.errors`` and ``retrieval.types`` only.
A new container or still format goes in ``library`` (what counts as media) and ``decode``.
"""
from __future__ import annotations

from .decode import Probe, probe, read_frames, read_still
from .ffmpeg import (Job, MediaInfo, capture_ffmpeg, count_video_frames, ffmpeg_exe, file_arg,
                     media_info, run_ffmpeg, run_ffmpeg_jobs)
from .library import INDEX_DIR, MediaFile, check_root, find_media, footage_text, media_kind

__all__ = [
    "INDEX_DIR", "Job", "MediaFile", "MediaInfo", "Probe", "capture_ffmpeg", "check_root",
    "count_video_frames", "ffmpeg_exe", "file_arg", "find_media", "footage_text", "media_info",
    "media_kind",
    "probe", "read_frames", "read_still", "run_ffmpeg", "run_ffmpeg_jobs",
]
