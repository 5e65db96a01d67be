"""One exception base for every user-facing failure, so the CLI can print one clear line.

Every stage raises a subclass of :class:`MontageError`; the CLI catches the base, prints
``error: <message>`` plus the hint, and exits non-zero without a traceback.
"""
from __future__ import annotations


class MontageError(Exception):
    """A failure the user can act on: says what went wrong, where, and what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ScriptError(MontageError):
    """The script cannot be read or planned (empty, binary, not English, ...)."""


class LibraryError(MontageError):
    """The footage library is missing, empty, unreadable, or its index is unusable."""


class MediaError(MontageError):
    """One media file cannot be decoded."""


class ProjectError(MontageError):
    """The project folder or an artifact in it cannot be written or read back."""


class RenderError(MontageError):
    """ffmpeg failed to render the edit."""


class ModelError(MontageError):
    """Model weights or a model package needed for this run are not available."""


class ExportError(MontageError):
    """The edit cannot be exported: unknown format, unwritable folder, no cut to export."""


class AudioError(MontageError):
    """A music or voice file cannot be used: missing, not audio, too short, not a Piper voice."""
