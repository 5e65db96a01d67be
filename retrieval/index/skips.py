"""What an index says of the files it did not index: each one's reason, kept in the files table
(``reason`` = "why: what was wrong", why one of :data:`retrieval.media.library.SKIP_REASONS`),
and the one error when not one file of a library could be read. (The reports it reads are
``build.IndexReport``s; ``build`` imports this module, so it is not imported back.)"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path

from planner.errors import LibraryError

from retrieval.media.library import NOT_MEDIA, UNSUPPORTED, group_skips, skip_counts, split_reason
from . import store


def readable(root: Path, report: "build.IndexReport", shown: int = 3) -> "build.IndexReport":
    """The report, or one LibraryError when not one file could be read: a film of title cards
    from a library of corrupt files would hide the real problem. Some unreadable files are fine
    (they are skipped, with a warning each, and listed in the report)."""
    if report.files_total == 0 or len(report.files_skipped) < report.files_total:
        return report
    groups = group_skips(report.files_skipped)
    media = [(p, r) for p, r in report.files_skipped if split_reason(r)[0] != NOT_MEDIA]
    listed = media or list(report.files_skipped)
    why = [f"{path} ({split_reason(reason)[1] or split_reason(reason)[0]})"
           for path, reason in listed[:shown]]
    more = len(listed) - shown
    named = "; ".join(why) + (f"; and {more} more" if more > 0 else "")
    n = len(media)
    if not n:
        raise LibraryError(
            f"no media files found in {root}: {report.files_total} file"
            f"{'s' if report.files_total != 1 else ''}, none a video or a picture: {named}",
            hint="point --library at the folder of your videos and pictures (any format ffmpeg "
                 "reads; see docs/footage.md)")
    hint = ("convert them (e.g. to H.264) with the camera maker's tool"
            if set(groups) - {NOT_MEDIA} == {UNSUPPORTED} else
            "the files are corrupt, truncated or empty: copy them again from the camera or their "
            "source, or point --library at the folder of good copies")
    raise LibraryError(
        f"none of the {n} media file{'s' if n != 1 else ''} in {root} could be read "
        f"({skip_counts(report.files_skipped)}): {named}", hint=hint)


def skipped_in(folder: Path) -> tuple[tuple[str, str], ...]:
    """(path, reason) of every file the index in ``folder`` skipped, by path; () when there
    is no readable index there."""
    import sqlite3

    if not (Path(folder) / store.DB_NAME).is_file():
        return ()
    try:
        with closing(store.connect(folder, readonly=True)) as con:
            files = store.read_files(con)
    except sqlite3.Error:
        return ()
    return tuple((p, r["reason"]) for p, r in sorted(files.items()) if r["reason"])


SHOWN_PER_REASON = 20  # a summary names this many files per reason; --json lists them all


def summary_lines(report: "build.IndexReport", shown: int = SHOWN_PER_REASON) -> list[str]:
    """The index summary a person reads: what was done, how many files were skipped for each
    reason, then each skipped file with its reason (``shown`` per reason at most)."""
    skipped = report.files_skipped
    counts = f" ({skip_counts(skipped)})" if skipped else ""
    lines = [f"indexed {report.files_indexed} files, reused {report.files_reused}, skipped "
             f"{len(skipped)}{counts}; {report.shots} shots in {report.seconds:.1f} s"]
    for why, files in group_skips(skipped).items():
        for path, detail in files[:shown]:
            lines.append(f"  skipped {path}: {why}" + (f": {detail}" if detail else ""))
        if len(files) > shown:
            lines.append(f"  ... and {len(files) - shown} more {why} "
                         "(montage index --json lists every one)")
    return lines


def report_dict(report: "build.IndexReport") -> dict:
    """The report as JSON data, every skipped file with its reason."""
    groups = group_skips(report.files_skipped)
    return {
        "files": report.files_total, "indexed": report.files_indexed,
        "reused": report.files_reused, "shots": report.shots, "seconds": report.seconds,
        "footage_seconds": report.footage_seconds, "embedder": report.embedder,
        "location": report.location, "reembedded": report.files_reembedded,
        "parked": report.parked,
        "skipped": [{"path": p, "why": why, "detail": detail}
                    for why, files in groups.items() for p, detail in files],
        "skipped_counts": {why: len(files) for why, files in groups.items()},
    }
