"""planner: turns a written script into a :class:`ShotPlan` (what each shot shows, who, how long).

spaCy loads lazily on the first plan, so importing the package stays cheap.
"""
from __future__ import annotations

from planner.errors import (
    LibraryError,
    MediaError,
    ModelError,
    MontageError,
    ProjectError,
    RenderError,
    ScriptError,
)
from planner.plan import load_script, plan_text
from planner.shots import PlannedShot, ShotPlan

__all__ = [
    "load_script",
    "plan_text",
    "ShotPlan",
    "PlannedShot",
    "MontageError",
    "ScriptError",
    "LibraryError",
    "MediaError",
    "ProjectError",
    "RenderError",
    "ModelError",
]
