"""Cuts as versions: list them, compare the last two shot by shot, and go back to one.

A revert does not rewrite history: it makes a new cut equal to the old one (its clips come
from the render cache, so going back is fast), and the next `montage make` recuts from there.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from planner.align import align
from planner.errors import ProjectError
from planner.shots import ShotPlan

from montage.optimize import EditDecision, edl_text
from montage.project.lock import project_lock
from montage.project.publish import commit_cut, settle, staged_film
from montage.project.settings import same_settings, settings_json
from montage.project.state import (RENDERED, SETTINGS_FILE, copy_atomic, cut_dir, cut_settings,
                                   disk_full_is_an_error, history, load_state, record_cut,
                                   write_atomic)
from montage.film import read_timeline, render_edit, write_srt


def _require_state(project: Path):
    state = load_state(project)
    if state is None:
        raise ProjectError(f"{project} holds no cut yet",
                           "make one first: montage make SCRIPT --library DIR --project PROJECT")
    return state


def history_text(project: Path) -> str:
    state = _require_state(project)
    lines = []
    for info in history(project):
        mark = "*" if info.cut == state.cut else " "
        lines.append(f"{mark} {info.cut:4d}  {info.time}  {info.shots:3d} shots  "
                     f"{info.seconds:6.1f} s  {info.summary}")
    return "\n".join(lines)


def _clip(d: EditDecision) -> str:
    if d.source == "placeholder":
        return "title card"
    return f"{d.library_shot} @{d.source_in}+{d.frames}"


def diff_text(project: Path, old: int | None = None, new: int | None = None) -> str:
    """Shot by shot, what changed between two cuts (default: the last two)."""
    state = _require_state(project)
    new = new or state.cut
    old = old or new - 1
    if old < 1:
        return f"cut {new} is the first cut: nothing to compare"
    edls, plans = [], []
    for n in (old, new):
        folder = cut_dir(project, n)
        if not (folder / "edit.otio").is_file():
            raise ProjectError(f"cut {n} is not in {project / 'history'}",
                               "see the cuts with: montage history PROJECT")
        edls.append(read_timeline(folder / "edit.otio"))
        plans.append(ShotPlan.load(folder / "plan.json"))
    before = {d.shot_id: d for d in edls[0].decisions}
    alignment = align(plans[0], plans[1])
    lines = [f"cut {old} -> cut {new}: {alignment.summary()}"]
    same = 0
    for i, (d, change) in enumerate(zip(edls[1].decisions, alignment.changes), 1):
        b = before.get(change.previous or d.shot_id)
        what = {"inserted": "new shot", "edited": f"edited (was {change.previous})",
                "moved": "moved"}.get(change.status, "")
        if b is not None and _clip(b) == _clip(d):
            if not what:
                same += 1
                continue
            lines.append(f"  {i:3d} {d.shot_id}  {what}, keeps {_clip(d)}")
        elif b is None:
            lines.append(f"+ {i:3d} {d.shot_id}  {what}: {_clip(d)}  \"{d.text}\"")
        else:
            lines.append(f"~ {i:3d} {d.shot_id}  {(what + ', ') if what else ''}"
                         f"{_clip(b)} -> {_clip(d)}  ({d.reason})")
    for change in alignment.changes:
        if change.status == "deleted":
            d = before[change.shot_id]
            lines.append(f"-     {d.shot_id}  removed: {_clip(d)}  \"{d.text}\"")
    lines.append(f"= {same} shots unchanged")
    return "\n".join(lines)


def revert(project: Path, n: int, *, progress: bool | Callable[[str], None] = False,
           wait: float = 0.0) -> int:
    """Make cut ``n`` the current one again, as a new cut; returns the new cut's number.
    Holds the project's lock (``wait`` seconds for another writer to finish)."""
    with project_lock(project, f"montage revert {n}", wait=wait > 0, timeout=wait), \
            disk_full_is_an_error(project):
        return _revert(project, n, progress)


def _revert(project: Path, n: int, progress: bool | Callable[[str], None]) -> int:
    settle(project)
    state = _require_state(project)
    source = cut_dir(project, n)
    if not (source / "edit.otio").is_file():
        raise ProjectError(f"cut {n} is not in {project / 'history'}",
                           "see the cuts with: montage history PROJECT")
    new = state.cut + 1
    files = {name: (source / name).read_text(encoding="utf-8")
             for name in ("plan.json", "candidates.json", "edit.otio", "script.txt",
                          SETTINGS_FILE, RENDERED)
             if (source / name).is_file() or name in ("plan.json", "candidates.json", "edit.otio")}
    if RENDERED in files:  # what each shot shows, yes; what changed since the cut before n, no
        try:
            shown = json.loads(files[RENDERED])
            files[RENDERED] = json.dumps({"format": shown["format"], "shots": shown["shots"]})
        except (ValueError, KeyError, TypeError):
            del files[RENDERED]
    edl = read_timeline(source / "edit.otio")
    # the settings come back with the cut (a cut made before they were kept: the current ones)
    settings = cut_settings(project, n) or state.settings
    summary = f"revert to cut {n}"
    if settings is not None and state.settings is not None and settings != state.settings:
        summary += "; settings: " + ", ".join(settings.changes_from(state.settings))
    folder = record_cut(project, new, files, summary, len(edl.decisions), edl.seconds)
    if SETTINGS_FILE not in files and settings is not None:
        write_atomic(folder / SETTINGS_FILE, settings_json(settings, project))
    film = Path(state.film)
    render_edit(folder / "edit.otio", staged_film(film, new), cache=project / "cache",
                progress=progress)
    for name in ("contact.png", "rhythm.png"):  # the same edit: the same pictures
        if (source / name).is_file():
            copy_atomic(source / name, folder / name)
    write_srt(edl, folder / "film.srt")
    write_atomic(folder / "report.md", f"# Cut {new}: revert to cut {n}\n\nSee history/{n:04d}/.\n")
    same = settings is None or state.settings is None or same_settings(settings, state.settings)
    # other settings: the next recut searches and solves again (its candidates were not these)
    commit_cut(project, replace(state, cut=new, settings=settings,
                                key=state.key if same else ""))
    return new


def explain_text(project_dir: Path) -> str:
    """The explanation of a project's edit, one block per shot (for ``montage explain``)."""
    project_dir = Path(project_dir)
    edl = read_timeline(project_dir / "edit.otio")
    return edl_text(edl, project_dir.name)
