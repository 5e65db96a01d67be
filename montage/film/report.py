"""A short human-readable account of the edit: which clip illustrates which sentence, and why."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from planner.shots import ShotPlan
from retrieval.media import group_skips, skip_counts
from retrieval.types import CandidateSet

from montage.optimize import Solution, edl_text


def _clock(frames: int, rate) -> str:
    s = float(frames / rate)
    return f"{int(s // 60)}:{s % 60:05.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _confidence(d) -> str:
    """The table's cell: the clip's sd above the library (a card: its best hit's, vs the bar)."""
    if d.confidence is None:
        return "-" if d.source == "placeholder" else f"({d.score:.2f})"
    if d.source == "placeholder":
        return f"best {d.confidence:.1f} {'<' if d.confidence < d.bar else '>='} bar {d.bar:.1f}"
    return f"{d.confidence:.1f}"


def fill_label(d) -> str:
    """What a generated decision is called wherever it shows: a stand-in (composed from library
    frames and the cast's photos) or a generated picture, with its backend."""
    prov = dict(d.provenance)
    if prov.get("stand_in") == "yes":
        return "stand-in"
    return f"generated ({prov['backend']})" if prov.get("backend") else "generated"


def report_text(plan: ShotPlan, candidates: CandidateSet, solution: Solution, film: Path,
                changes: str = "", cast: Sequence[str] = (),
                skipped: Sequence[tuple[str, str]] = (), identity: Sequence[str] = ()) -> str:
    """The report; ``cast``: markdown lines about the characters (when a generator ran);
    ``skipped``: (path, reason) of the library's files the index did not take; ``identity``:
    how many of each character's shots show their face (montage.film.identity)."""
    edl = solution.edl
    placeholders = sum(d.source == "placeholder" for d in edl.decisions)
    generated = sum(d.source == "generated" for d in edl.decisions)
    standins = sum(d.source == "generated" and fill_label(d) == "stand-in" for d in edl.decisions)
    bent = sum(len(d.bends) for d in edl.decisions)
    lines = [
        f"# Montage report: {film.name}",
        "",
        f"- script: {plan.source} ({len(plan.shots)} shots, {len(plan.scene_titles) or 1} scenes)"
        + (f"; this cut: {changes}" if changes else ""),
        f"- library: {candidates.library} (embedder {candidates.embedder})"
        + (f"; {len(skipped)} files not used ({skip_counts(skipped)}), listed below"
           if skipped else ""),
        f"- film: {edl.seconds:.1f} s at {edl.width}x{edl.height}, {edl.rate} fps; "
        f"{len(edl.decisions) - placeholders - generated} library clips, "
        + (f"{generated} generated ({standins} stand-in{'s' if standins != 1 else ''}), "
           if generated else "") + f"{placeholders} placeholders",
        f"- rules: {solution.rules or 'default'}; {bent} rule bends",
        f"- optimizer ({solution.method}): objective {solution.objective:.3f}, bound "
        f"{solution.bound:.3f}, gap {100 * solution.gap:.2f}%, "
        f"{'proven optimal' if solution.optimal else 'not proven optimal'}, {solution.seconds:.3f} s",
        "",
        "| # | at | sentence | clip | confidence (sd) | runner-up, and what decided | bends |",
        "|---|----|----------|------|-----------------|------------------------------|-------|",
    ]
    for n, (d, start) in enumerate(zip(edl.decisions, edl.starts()), 1):
        if d.source == "placeholder":
            clip = "*title card*"
        elif d.source == "generated":
            clip = f"*{fill_label(d)}* `{d.library_shot}`"
        else:
            span = f"{_clock(d.source_in, edl.rate)}-{_clock(d.source_in + d.frames, edl.rate)}"
            clip = f"`{d.library_shot}`" + ("" if d.kind == "still" else f" {span}")
        runner = f"{d.runner_up}: {d.decided_by}" if d.runner_up else d.decided_by
        lines.append(f"| {n} | {_clock(start, edl.rate)} | {_cell(d.text)} | {clip} | "
                     f"{_confidence(d)} | {_cell(runner)} | {', '.join(d.bends)} |")
    bars = sorted({d.bar for d in edl.decisions if d.bar is not None})
    if bars:
        lines += ["", f"Confidence: how many sd a clip's score stands above the library's scores "
                      f"for its sentence. A sentence whose best clip stands under the card bar "
                      f"({', '.join(f'{b:.1f}' for b in bars)} sd; by default where the best "
                      f"hit of an unrelated sentence stands in this library, moved by the style) "
                      f"gets a title card: no shot in the library is clearly about it."]
    if cast:
        lines += ["", "## Cast", "", *cast]
    if identity:
        lines += ["", "## Identity (measured on the film)", "",
                  "Each shot naming a character with a reference photo, looked at in three frames "
                  "of the film: it shows them when dlib finds a face within 0.6 of their photo's "
                  "in two of the three.", "", *identity]
    if skipped:
        lines += ["", "## Library files not used", "", "| file | why | what was wrong |",
                  "|------|-----|----------------|"]
        lines += [f"| `{_cell(path).replace('`', chr(39))}` | {why} | {_cell(detail)} |"
                  for why, files in group_skips(skipped).items() for path, detail in files]
    lines += ["", "## Reasons", ""]
    lines += [f"{n}. `{d.shot_id}` {_cell(d.reason)}" for n, d in enumerate(edl.decisions, 1)]
    lines += ["", edl_text(edl, film.name).replace("# Why each shot", "## Why each shot")]
    return "\n".join(lines) + "\n"

