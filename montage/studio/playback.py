"""The film the page plays: the cut's film as it was when the cut was made.

A recut in the studio is committed with a preview film (its sound the clips' FLAC, joined
without encoding: :meth:`montage.pipeline.Recutter.cut` with ``preview``), which the page plays
at once; the finished film (AAC) then takes ``film.mp4``'s place. A player reading byte ranges
must not see its file change under it, so each cut's film is kept by a second name (a hard
link, else a copy) under ``cache/studio/`` and served from there; older ones are removed.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

KEEP = 2  # the current cut's file and the one before (a page may still be reading it)


def _folder(project: Path) -> Path:
    return project / "cache" / "studio"


def playing_file(project: Path, cut: int) -> Path | None:
    path = _folder(project) / f"play-{cut:04d}.mp4"
    return path if path.is_file() else None


def keep_playing(project: Path, film: Path, cut: int) -> Path:
    """``film`` by a name of its own for cut ``cut`` (what the page will play)."""
    folder = _folder(project)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"play-{cut:04d}.mp4"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(film, tmp)
    except OSError:  # another file system, or no hard links: a copy
        shutil.copyfile(film, tmp)
    os.replace(tmp, path)
    for old in sorted(folder.glob("play-*.mp4"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return path
