"""``montage export``: the project's ``edit.otio`` in the formats editors open.

One module per format family (``otio_formats``: what OpenTimelineIO's adapters write right;
``fcpxml`` and ``mlt``: written here), a registry keyed by file extension (:data:`FORMATS`),
and :mod:`media`, which gives every clip a real file first (title cards and stills rendered,
generated shots copied beside the export). Every writer reads the same :class:`ExportEdit`.
The export is written to a hidden partial file and renamed at the end: a failed export never
leaves a file that looks finished.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from montage.film.export.fcpxml import write_fcpxml
from montage.film.export.media import (AudioClip, AudioTrack, ExportClip, ExportEdit, MediaReport,
                                       media_folder, prepare_media)
from montage.film.export.mlt import write_kdenlive, write_mlt
from montage.film.export.otio_formats import write_edl, write_fcp7, write_otio, write_otioz
from montage.film.timeline import read_timeline
from montage.optimize import EditDecisionList
from planner.errors import ExportError


@dataclass(frozen=True)
class Format:
    """One export format: its extension, what it is, and the function that writes it."""

    extension: str
    name: str
    write: Callable[[ExportEdit, EditDecisionList, Path], None]


FORMATS: dict[str, Format] = {f.extension: f for f in (
    Format(".otio", "OpenTimelineIO", write_otio),
    Format(".otioz", "OpenTimelineIO bundle with media", write_otioz),
    Format(".fcpxml", "Final Cut Pro X / DaVinci Resolve (FCPXML 1.9)", write_fcpxml),
    Format(".xml", "Final Cut Pro 7 XML (Premiere)", write_fcp7),
    Format(".edl", "CMX 3600 EDL", write_edl),
    Format(".mlt", "MLT XML (Shotcut, melt)", write_mlt),
    Format(".kdenlive", "Kdenlive", write_kdenlive),
)}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, and where the time went (media apart from the writing)."""

    path: Path
    format: str
    clips: int
    media: MediaReport
    write_seconds: float


def export_format(path: Path) -> Format:
    """The format named by ``path``'s extension, or one error listing the known ones."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(FORMATS)
        raise ExportError(f"cannot export to {path}: unknown extension "
                          f"{Path(path).suffix or '(none)'!r}",
                          f"use one of {known}")
    return fmt


def project_timeline(project: Path) -> Path:
    """The ``edit.otio`` of a project folder (or an ``.otio`` file given directly)."""
    project = Path(project)
    if project.is_file() and project.suffix == ".otio":
        return project
    if not project.is_dir():
        raise ExportError(f"project folder not found: {project}",
                          "pass the --project folder of an earlier montage make")
    otio_path = project / "edit.otio"
    if not otio_path.is_file():
        raise ExportError(f"{project} holds no cut yet (no edit.otio)",
                          "run montage make with --project first")
    return otio_path


def _claim(out: Path) -> Path:
    """Make the hidden partial file now, so an unwritable folder fails before any rendering."""
    if out.is_dir():
        raise ExportError(f"the export {out} is a folder", "give a file name, e.g. film.fcpxml")
    partial = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb"):
            pass
    except OSError as exc:
        raise ExportError(f"cannot write the export to {out.parent} ({exc.strerror or exc})",
                          "choose a writable folder (check its permissions)") from exc
    return partial


def export_project(project: Path, to: Path, *, jobs: int | None = None) -> ExportResult:
    """Export the project's current cut to ``to`` (format by extension); see the module doc."""
    to = Path(to)
    fmt = export_format(to)
    otio_path = project_timeline(project)
    edl = read_timeline(otio_path)
    if not edl.decisions:
        raise ExportError(f"{otio_path}: the cut has no clips", "nothing to export")
    sources = {otio_path.resolve()} | {(otio_path.parent / d.media).resolve()
                                        for d in edl.decisions if d.media}
    if to.resolve() in sources:
        raise ExportError(f"the export {to} is the project's edit or a clip's source media",
                          "choose another file; sources are never overwritten")
    partial = _claim(to)
    try:
        edit, media = prepare_media(edl, otio_path, to.absolute(), name=to.stem, jobs=jobs)
        started = time.perf_counter()
        fmt.write(edit, edl, partial)
        os.replace(partial, to)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(to, fmt.name, len(edit.clips), media, time.perf_counter() - started)


__all__ = ["AudioClip", "AudioTrack", "ExportClip", "ExportEdit", "ExportResult", "FORMATS",
           "Format", "MediaReport", "export_format", "export_project", "media_folder",
           "prepare_media", "project_timeline"]
