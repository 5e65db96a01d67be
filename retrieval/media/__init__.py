"""media (floor 1): the files of a footage library and what is in them as pictures.

Owns: finding a library's files and the words they carry (``library``, ``tags``), what counts
as media and why a file is skipped (``library``), probing and decoding them (``decode``: PyAV;
``stills``: Pillow, pillow-heif, rawpy), showing a camera's picture right (``look``:
deinterlace, rotation, HDR to SDR, the same filters for analysis and render), hard cuts
(``cuts``: PySceneDetect), and every ffmpeg process (``ffmpeg``). May import:
``planner.errors`` and ``retrieval.types`` only. A new container or still format goes in
``library`` (what counts as media) and ``decode`` / ``stills``; see docs/footage.md.
"""
from __future__ import annotations

from .decode import Probe, look_of, probe, read_frames, read_still, sniff
from .ffmpeg import (Job, MediaInfo, capture_ffmpeg, count_video_frames, ffmpeg_exe, file_arg,
                     media_info, run_ffmpeg, run_ffmpeg_jobs)
from .library import (INDEX_DIR, SKIP_REASONS, MediaFile, SkippedMedia, check_root, find_media,
                      footage_text, group_skips, media_kind, skip_counts, split_reason)
from .look import Look
from .stills import write_png

__all__ = [
    "INDEX_DIR", "Job", "Look", "MediaFile", "MediaInfo", "Probe", "SKIP_REASONS", "SkippedMedia",
    "capture_ffmpeg", "check_root", "count_video_frames", "ffmpeg_exe", "file_arg", "find_media",
    "footage_text", "group_skips", "look_of", "media_info", "media_kind", "probe", "read_frames",
    "read_still", "run_ffmpeg", "run_ffmpeg_jobs", "skip_counts", "sniff", "split_reason",
    "write_png",
]
