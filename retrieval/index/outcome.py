"""What one indexing run did (:class:`IndexReport`), and the one error when no file of the
library could be read."""
from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from planner.errors import LibraryError

from . import store


@dataclass(frozen=True)
class IndexReport:
    """What one indexing run did."""

    files_total: int
    files_indexed: int  # decoded and embedded this run
    files_reused: int  # unchanged since the last run: vectors kept
    files_skipped: tuple[tuple[str, str], ...]  # (path, reason) of unreadable files
    shots: int
    seconds: float
    embedder: str = ""
    footage_seconds: float = 0.0  # video analysed this run (stills not counted)
    location: str = ""  # the index folder



def _readable(root: Path, report: IndexReport, shown: int = 3) -> IndexReport:
    """The report, or one LibraryError when not one file could be read: a film of title cards
    from a library of corrupt files would hide the real problem. Some unreadable files are fine
    (they are skipped, with a warning each, and listed in the report)."""
    if report.files_total == 0 or len(report.files_skipped) < report.files_total:
        return report
    why = []
    for path, reason in report.files_skipped[:shown]:
        short = reason.split(": ", 1)[1] if reason.startswith("cannot read ") and ": " in reason \
            else reason
        why.append(f"{path} ({short})")
    more = report.files_total - shown
    listed = "; ".join(why) + (f"; and {more} more" if more > 0 else "")
    n = report.files_total
    raise LibraryError(
        f"none of the {n} media file{'s' if n != 1 else ''} in {root} could be read: {listed}",
        hint="the files are corrupt, truncated or empty: copy them again from the camera or "
             "their source, or point --library at the folder of good copies")


def _report(media, fresh, indexed_paths, skipped, started, name, folder) -> IndexReport:
    shots = 0
    if fresh or indexed_paths:
        with closing(store.connect(folder, readonly=True)) as con:
            shots = store.count_shots(con)
    return IndexReport(
        files_total=len(media), files_indexed=len(fresh),
        files_reused=len(media) - len(fresh) - len(skipped),
        files_skipped=tuple((p, skipped[p]["reason"]) for p in sorted(skipped)),
        shots=shots, seconds=round(time.perf_counter() - started, 3), embedder=name,
        footage_seconds=round(sum(e.record.get("seconds", 0.0) for e in fresh.values()), 3),
        location=str(folder),
    )

