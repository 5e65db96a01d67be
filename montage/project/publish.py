"""Make a new cut the current one in a way a kill at any moment cannot leave half done.

A cut is first written whole where nothing reads it: ``history/NNNN/`` (plan, candidates,
edit.otio, report, subtitles, contact sheet) and the film at a hidden staged name beside the
real one. Then ``state.json`` is replaced (one atomic rename): that is the commit. Only then are
the film and the files copied into place, the film last. A run killed before the commit leaves
the previous cut untouched (its leftovers are swept by the next run); a run killed after it
leaves a committed cut whose staged film still exists, which :func:`settle` (called by the next
writer, under the project lock) finishes publishing.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from planner.errors import ProjectError

from montage.project.state import (ProjectState, copy_atomic, cut_dir, load_state, save_state)

# the files of a cut that are copied from history/NNNN/ into the project folder
PUBLISHED = ("plan.json", "candidates.json", "edit.otio", "report.md", "contact.png",
             "rhythm.png", "film.srt")


def staged_film(film: Path, cut: int) -> Path:
    """Where cut ``cut``'s film waits for its commit: hidden, beside the film."""
    return film.with_name(f".{film.stem}.cut{cut:04d}.mp4")


def commit_cut(project: Path, state: ProjectState) -> None:
    """The commit (state.json names the new cut), then its publication."""
    save_state(project, state)
    _publish(project, state)


def settle(project: Path) -> None:
    """Finish a committed cut whose publication a kill cut short, and sweep what runs killed
    before their commit left behind. Call it holding the project's lock."""
    try:
        state = load_state(project)
    except ProjectError:
        return  # a damaged state is the caller's to report or rebuild
    if state is None:
        return
    film = Path(state.film)
    if staged_film(film, state.cut).is_file():
        _publish(project, state)
    _sweep(project, film, state.cut)


def _publish(project: Path, state: ProjectState) -> None:
    folder, film = cut_dir(project, state.cut), Path(state.film)
    for name in PUBLISHED:
        if (folder / name).is_file():
            copy_atomic(folder / name, project / name)
    if (folder / "film.srt").is_file() and film.with_suffix(".srt") != project / "film.srt":
        copy_atomic(folder / "film.srt", film.with_suffix(".srt"))
    staged = staged_film(film, state.cut)
    if staged.is_file():
        os.replace(staged, film)  # last: while the staged film exists, publication is not done


def _dead(pid: str) -> bool:
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _sweep(project: Path, film: Path, cut: int) -> None:
    """Remove what runs killed before their commit left: staged films of later cut numbers
    (and their render partials), temporary files of dead processes, half-written history."""
    staged = re.compile(rf"^\.{{1,2}}{re.escape(film.stem)}\.cut(\d+)\.mp4(\.partial)?$")
    leftovers = []
    if film.parent.is_dir():
        for p in film.parent.iterdir():
            m = staged.match(p.name)
            if m and int(m.group(1)) > cut:
                leftovers.append(p)
    temp = re.compile(r"\.(\d+)(?:[.-][0-9a-f]+)?\.tmp(?:\.mov|\.mp4)?$")
    for folder in (project, project / "cache"):
        if folder.is_dir():
            for p in folder.iterdir():
                m = temp.search(p.name)
                if m and p.is_file() and _dead(m.group(1)):
                    leftovers.append(p)
    for p in leftovers:
        p.unlink(missing_ok=True)
