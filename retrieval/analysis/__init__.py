"""analysis (floor 2): what a shot looks like without a learned embedding.

Owns: the one pass over a video (``scan``), everything measured per file and per shot
(``analyse``: keyframes, tone, focus, colour, motion, faces, people, light and sky words) and the
worker processes that run it (``workers``); OpenCV (``vision``), dlib (``faces``) and mediapipe's
LiteRT models (``people``) are imported here and nowhere else. May import: ``media``,
``retrieval.types``, ``planner``. A new per-shot measurement goes here (``features`` or its own
module), is computed in ``analyse`` and stored in ``retrieval.types.ShotFeatures``.
"""
from __future__ import annotations

from .faces import descriptor_settings, detect_faces, shot_scale
from .features import dominant_colors, histogram, tone
from .people import Cutout, person_cutout
from .vision import gaussian_blur, resize, warp_affine

__all__ = ["Cutout", "descriptor_settings", "detect_faces", "dominant_colors", "gaussian_blur",
           "histogram", "person_cutout", "resize", "shot_scale", "tone", "warp_affine"]
