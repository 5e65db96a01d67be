"""The sources of a render: each clip's media file checked and probed before any encoding, and
what ffmpeg is given to read for it.

ffmpeg reads a video directly, shown by its :class:`retrieval.media.Look` (deinterlaced, turned,
HDR mapped to SDR: the filters the analysis ran). A still is given to ffmpeg as montage reads
it: JPEG, PNG and WebP as they are (ffmpeg reads them, EXIF orientation included), every other
picture (HEIC, AVIF, TIFF, BMP, camera RAW, ...) as an upright PNG made by
:func:`retrieval.media.read_still`, so the film shows the picture the index analysed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from montage.film.filmcache import probe_known, read_probes, write_probes
from montage.optimize import EditDecisionList
from planner.errors import MontageError, RenderError
from retrieval.media import MediaInfo, read_still, write_png

# pictures ffmpeg reads as montage does (EXIF orientation included)
FFMPEG_STILLS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class Source:
    """A clip's media file (resolved) and what ffmpeg says it holds; both None for a card."""

    path: Path | None
    info: MediaInfo | None


def check_inputs(edl: EditDecisionList, otio_path: Path, out_path: Path,
                  cache: Path | None = None) -> list[Source]:
    """Every problem we can see before encoding: empty edit, odd size, missing media.

    Relative media paths (a hand-edited timeline) are taken relative to the .otio file. With a
    ``cache``, what ffmpeg said of each source is kept there per file version (a recut of a
    long film probed every source again: a third of a second for 13)."""
    known = read_probes(cache) if cache is not None else {}
    before = len(known)
    if not edl.decisions:
        raise RenderError(f"{otio_path}: the timeline has no clips", "nothing to render")
    if edl.width <= 0 or edl.height <= 0 or edl.width % 2 or edl.height % 2:
        raise RenderError(f"{otio_path}: film size {edl.width}x{edl.height} is not even and > 0",
                          "H.264 in yuv420p needs an even width and height, e.g. 1280x720")
    sources: list[Source] = []
    probed: dict[tuple[Path, str], MediaInfo] = {}
    out_real = out_path.resolve()
    for i, d in enumerate(edl.decisions):
        where = f"{otio_path}: clip {i} (shot {d.shot_id})"
        if d.kind not in ("video", "still", "card"):
            raise RenderError(f"{where}: unknown kind {d.kind!r}", "use video, still or card")
        if d.frames <= 0 or d.source_in < 0:
            raise RenderError(f"{where}: bad range in={d.source_in} frames={d.frames}",
                              "fix the clip's source range in the timeline")
        if d.kind == "card":
            sources.append(Source(None, None))
            continue
        media = (otio_path.parent / d.media).absolute()  # an absolute d.media stays as it is
        if not d.media or not media.is_file():
            raise RenderError(f"{where}: media file not found: {d.media or '(none)'}",
                              "restore the file, or re-run retrieval and montage")
        if media.resolve() == out_real:
            raise RenderError(f"{where}: the output {out_path} is this clip's source media",
                              "choose another output path; sources are never overwritten")
        try:
            if (media, d.kind) not in probed:
                probed[media, d.kind] = probe_known(media, known, d.kind)
        except RenderError as exc:
            raise RenderError(f"{where}: {exc.message}", exc.hint) from exc
        sources.append(Source(media, probed[media, d.kind]))
    if cache is not None and len(known) != before:
        write_probes(cache, known)
    return sources


def still_input(path: Path, out: Path) -> Path:
    """What ffmpeg reads for the still at ``path``: the file itself, or an upright PNG of it
    written to ``out`` (see the module docstring)."""
    if path.suffix.lower() in FFMPEG_STILLS:
        return path
    try:
        return write_png(read_still(path), out)
    except MontageError as exc:
        raise RenderError(exc.message, exc.hint) from exc
