"""film (floor 2): everything that turns a decision list into what a person opens.

Owns: the OpenTimelineIO edit (``timeline``), the rendered film (``render``, ffmpeg; the mix in
``audio``; the soundtrack's time line in ``soundtrack``), subtitles, the contact sheet, the
rhythm plot, the report (with ``identity``: do a character's shots show their face, measured
on the film), and the exports editors open (``export/``). It reads
:mod:`montage.optimize`'s decision list and writes files; it keeps no project state (that is
:mod:`montage.project`). May import: ``montage.optimize``, ``planner``, ``retrieval``,
``generator``. A new export format is a writer in ``export/`` and its extension in ``FORMATS``.
"""
from __future__ import annotations

from montage.film.contact import write_contact_sheet
from montage.film.export import FORMATS, ExportResult, export_project
from montage.film.moviepy_bridge import moviepy_clip
from montage.film.render import RenderResult, finish_film, render_edit, render_timeline
from montage.film.identity import Identity, identity_lines, measure_identity
from montage.film.report import fill_label, report_text
from montage.film.rhythm import clip_features, rhythm_plot
from montage.film.soundtrack import BREATH, LEAD, TAIL, Soundtrack, Speech, place, probe_audio
from montage.film.subtitles import read_srt, write_srt
from montage.film.timeline import edl_to_timeline, read_timeline, write_timeline

__all__ = [
    "FORMATS", "ExportResult", "Identity", "RenderResult", "clip_features", "edl_to_timeline",
    "export_project", "fill_label", "finish_film", "identity_lines", "measure_identity",
    "read_srt", "read_timeline", "render_edit", "render_timeline", "report_text", "rhythm_plot",
    "write_contact_sheet", "write_srt", "write_timeline",
]
