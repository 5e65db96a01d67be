"""The engines' one error (its own module, so every engine can import it without a circle)."""
from __future__ import annotations

from planner.errors import LibraryError


class EngineError(LibraryError):
    """The chosen engine cannot run: Ray is not installed, no cluster answers, a run failed."""
