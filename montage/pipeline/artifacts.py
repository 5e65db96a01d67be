"""What a cut leaves behind: its history folder (plan, script, edit, settings, what each shot
shows) and the artifacts published beside the film (candidates, subtitles, contact sheet,
rhythm plot, report), and the result a run returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from planner.shots import ShotPlan
from retrieval.types import CandidateSet

from montage.film import (Soundtrack, clip_features, report_text, rhythm_plot,
                          write_contact_sheet, write_srt, write_timeline)
from montage.optimize import EditDecisionList, Solution
from montage.project import record_cut, write_atomic


@dataclass(frozen=True)
class MakeResult:
    film: Path
    project: Path
    cut: int
    shots: int
    placeholders: int
    seconds: float  # film length
    changes: str  # what the recut changed, e.g. "1 edited, 74 unchanged" (as rendered)
    kept: int  # shots that show exactly what they showed in the previous cut
    encoded: int  # clips encoded by this run (the rest came from the cache)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds


def record(project: Path, n: int, plan: ShotPlan, edl: EditDecisionList, changes: str,
           script: Path, sound: Soundtrack | None = None,
           more: dict[str, str] | None = None) -> Path:
    """history/NNNN/ with the plan, the edit, the script text it was cut from (so going back
    to a cut can bring its words back too), and ``more`` files (its settings, what each shot
    shows)."""
    project.mkdir(parents=True, exist_ok=True)
    files = {"plan.json": plan.to_json(),
             "script.txt": script.read_text(encoding="utf-8", errors="replace"), **(more or {})}
    folder = record_cut(project, n, files, changes, len(plan.shots), edl.seconds)
    write_timeline(edl, folder / "edit.otio", name=script.stem, sound=sound)
    return folder


def prepare(folder: Path, solution: Solution, plan: ShotPlan, candidates: CandidateSet,
            staged: Path, out: Path, changes: str, cast: list[str],
            sound: Soundtrack | None = None, *, contact: bool, thumbs: Path,
            skipped: tuple[tuple[str, str], ...] = (), identity: list[str] | None = None) -> None:
    """Every artifact of the new cut, in its history folder (montage.project.publish copies
    them into place after the commit); ``contact``: the contact sheet now (a preview cut's
    comes when it is finished); ``skipped``: the library's files its index did not take;
    ``identity``: the report's lines on whether each character's face is in their shots."""
    write_atomic(folder / "candidates.json", candidates.to_json())
    write_srt(solution.edl, folder / "film.srt", sound=sound)
    if contact:
        write_contact_sheet(staged, solution.edl, folder / "contact.png", cache=thumbs)
    rhythm_plot(solution.edl, clip_features(candidates), folder / "rhythm.png")
    write_atomic(folder / "report.md",
                 report_text(plan, candidates, solution, film=out, changes=changes, cast=cast,
                             skipped=skipped, identity=identity or []))
