"""A short human-readable account of the edit: which clip illustrates which sentence, and why."""
from __future__ import annotations

from pathlib import Path

from planner.shots import ShotPlan
from retrieval.types import CandidateSet

from montage.optimize import Solution


def _clock(frames: int, rate) -> str:
    s = float(frames / rate)
    return f"{int(s // 60)}:{s % 60:05.2f}"


def report_text(plan: ShotPlan, candidates: CandidateSet, solution: Solution, film: Path) -> str:
    edl = solution.edl
    placeholders = sum(d.source == "placeholder" for d in edl.decisions)
    lines = [
        f"# Montage report: {film.name}",
        "",
        f"- script: {plan.source} ({len(plan.shots)} shots, {len(plan.scene_titles) or 1} scenes)",
        f"- library: {candidates.library} (embedder {candidates.embedder})",
        f"- film: {edl.seconds:.1f} s at {edl.width}x{edl.height}, {edl.rate} fps; "
        f"{len(edl.decisions) - placeholders} library clips, {placeholders} placeholders",
        f"- optimizer: objective {solution.objective:.3f}, "
        f"{'proven optimal' if solution.optimal else 'not proven optimal'} in {solution.seconds:.3f} s",
        "",
        "| # | at | sentence | clip | score | why |",
        "|---|----|----------|------|-------|-----|",
    ]
    for n, (d, start) in enumerate(zip(edl.decisions, edl.starts()), 1):
        if d.source == "placeholder":
            clip = "*title card*"
        else:
            span = f"{_clock(d.source_in, edl.rate)}-{_clock(d.source_in + d.frames, edl.rate)}"
            clip = f"`{Path(d.media).name}`" + ("" if d.kind == "still" else f" {span}")
        why = d.reason
        text = d.text.replace("|", "\\|")
        lines.append(f"| {n} | {_clock(start, edl.rate)} | {text} | {clip} | {d.score:.2f} | "
                     f"{why.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_report(path: Path, plan: ShotPlan, candidates: CandidateSet, solution: Solution,
                 film: Path) -> None:
    path.write_text(report_text(plan, candidates, solution, film), encoding="utf-8")
