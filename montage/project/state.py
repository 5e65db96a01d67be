"""The project folder: the state of the last cut, its history, and the user's pins and bans.

Layout (all plain files a person can read):
  state.json           which library/settings the cuts were made with, and the current cut number
  plan.json, candidates.json, edit.otio, report.md, contact.png    the current cut
  project.toml         pins (shot id -> clip id) and bans (clip ids): edited by hand or by CLI
  history/NNNN/        every cut: plan.json, candidates.json, edit.otio, meta.json
  cache/               encoded clips, keyed by what decides their pixels (see montage.film.render)
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from planner.errors import ProjectError

STATE_VERSION = 1


@dataclass(frozen=True)
class ProjectState:
    """What the last cut was made from; a recut with other settings re-solves everything."""

    library: str  # absolute path of the footage library
    embedder: str
    index_id: str  # fingerprint of the library index the candidates came from
    script: str
    film: str  # where the film of the current cut was written
    settings: str  # style, size, rate, threshold... as one comparable string
    cut: int  # number of the current cut in history/ (1-based)
    version: int = STATE_VERSION
    generator: str = ""  # the generator the cut used, resolved ("" in states written before)


@dataclass(frozen=True)
class Choices:
    """The user's overrides: pinned clips per shot, banned clips, and hand-set trims."""

    pins: dict[str, str] = field(default_factory=dict)  # shot id -> library shot id
    bans: frozenset[str] = frozenset()
    # shot id -> (library shot id, where the clip starts in its file, seconds): a trim the user
    # nudged; it holds while the shot stays on that clip
    trims: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class CutInfo:
    """One entry of the history."""

    cut: int
    time: str
    summary: str  # what changed, e.g. "1 edited, 74 unchanged" or "revert to cut 2"
    shots: int
    seconds: float


@contextmanager
def disk_full_is_an_error(project: Path) -> Iterator[None]:
    """A full disk (or quota, or file size limit) met by any write in the block becomes one
    ProjectError; the cut being written was not committed, so the previous one stands."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        raise ProjectError(f"cannot write {exc.filename or project}: {exc.strerror}",
                           "free some disk space and run again; the previous cut is "
                           "unchanged") from None


def _tmp(path: Path) -> Path:
    """A temporary name beside ``path`` of this process and thread (the studio has threads)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a kill) sees the old or the new file."""
    tmp = _tmp(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_atomic(src: Path, dst: Path) -> None:
    tmp = _tmp(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DamagedState(ProjectError):
    """state.json cannot be read back (cut short, edited by hand): `montage make` rebuilds it."""


def load_state(project: Path) -> ProjectState | None:
    """The state of the last cut, or None for a new project; a damaged one is a DamagedState."""
    path = project / "state.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        problem = _state_problem(data)
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if problem is None and data["version"] != STATE_VERSION:
        raise ProjectError(f"{path}: project state version {data['version']} is not "
                           f"{STATE_VERSION}", "use a new --project folder for this version")
    if problem is not None:
        raise DamagedState(f"{path}: the project state is damaged ({problem})",
                           "run montage make again with the same script and --library: it "
                           "rebuilds state.json from the last cut in history/ (nothing is lost)")
    return ProjectState(**data)


def _state_problem(data: object) -> str | None:
    """What is wrong with the fields of a parsed state.json, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    fields = {f.name: f.type for f in dataclasses.fields(ProjectState)}
    unknown = sorted(set(data) - set(fields))
    optional = {f.name for f in dataclasses.fields(ProjectState)
                if f.default is not dataclasses.MISSING}
    missing = sorted(k for k in fields if k not in data and k not in optional)
    if unknown or missing:
        return f"unknown fields {unknown}, missing fields {missing}"
    for name, value in data.items():
        want = int if fields[name] == "int" else str
        if not isinstance(value, want) or isinstance(value, bool):
            return f"{name} must be {want.__name__}, got {value!r}"
    if data["cut"] < 1:
        return f"cut must be 1 or more, got {data['cut']}"
    data.setdefault("version", STATE_VERSION)
    return None


def last_cut(project: Path) -> int:
    """The highest cut number in history/ (0 when none): a project whose state.json went
    missing numbers its next cut after it, never over an existing one."""
    numbers = [int(p.name) for p in (project / "history").glob("[0-9][0-9][0-9][0-9]*")
               if p.is_dir() and p.name.isdigit()]
    return max(numbers, default=0)


def rebuild_state(project: Path, library: Path, script: Path,
                  film: Path) -> ProjectState | None:
    """A state for a project whose state.json is damaged: its last complete cut in history/
    (None when there is none). The damaged file is copied to state.json.damaged. Embedder, index
    and settings are unknown, so the next cut re-solves every shot, preferring the old clips."""
    path = project / "state.json"
    if path.exists():  # kept aside; state.json itself is replaced only by the next commit
        shutil.copyfile(path, project / "state.json.damaged")
    complete = [n for n in range(last_cut(project), 0, -1)
                if all((cut_dir(project, n) / name).is_file()
                       for name in ("plan.json", "candidates.json", "edit.otio", "meta.json"))]
    if not complete:
        return None
    try:  # the library that cut was made from, so a recut from another library is still refused
        cut_from = json.loads((cut_dir(project, complete[0]) / "candidates.json")
                              .read_text(encoding="utf-8"))["library"]
    except (OSError, ValueError, KeyError, TypeError):
        cut_from = None
    return ProjectState(library=cut_from if isinstance(cut_from, str) else str(library.resolve()),
                        embedder="", index_id="",
                        script=str(script.resolve()), film=str(film.resolve()), settings="",
                        cut=complete[0])


def save_state(project: Path, state: ProjectState) -> None:
    write_atomic(project / "state.json", json.dumps(asdict(state), indent=2))


def cut_dir(project: Path, cut: int) -> Path:
    return project / "history" / f"{cut:04d}"


def history(project: Path) -> list[CutInfo]:
    """Every cut recorded in the project, oldest first."""
    out = []
    for meta in sorted((project / "history").glob("*/meta.json")):
        try:
            out.append(CutInfo(**json.loads(meta.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError) as exc:
            raise ProjectError(f"{meta}: history entry is damaged ({exc})",
                               "delete that history folder; the other cuts stay usable") from None
    return out


def record_cut(project: Path, cut: int, files: dict[str, str], summary: str, shots: int,
               seconds: float) -> Path:
    """Write history/NNNN/ (replacing a leftover of a failed run with the same number)."""
    folder = cut_dir(project, cut)
    if folder.exists():
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    info = CutInfo(cut=cut, time=time.strftime("%Y-%m-%d %H:%M:%S"), summary=summary,
                   shots=shots, seconds=round(seconds, 2))
    (tmp / "meta.json").write_text(json.dumps(asdict(info), indent=2), encoding="utf-8")
    tmp.rename(folder)
    return folder


# -- pins and bans: project.toml -------------------------------------------------------------
def load_choices(project: Path) -> Choices:
    path = project / "project.toml"
    if not path.exists():
        return Choices()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read pins and bans ({exc})",
                           'fix the file: [pins] "SHOT_ID" = "CLIP_ID" and [bans] clips = [...]') from None
    pins = data.get("pins", {})
    bans = data.get("bans", {}).get("clips", [])
    if not isinstance(pins, dict) or not all(isinstance(v, str) for v in pins.values()):
        raise ProjectError(f"{path}: [pins] must map shot ids to clip ids (strings)",
                           'e.g. [pins] "sh-1a2b3c4d" = "bikes.mp4#2"')
    if not isinstance(bans, list) or not all(isinstance(v, str) for v in bans):
        raise ProjectError(f"{path}: [bans] clips must be a list of clip ids",
                           'e.g. [bans] clips = ["astronaut.png#0"]')
    trims = {}
    raw = data.get("trims", {})
    if not isinstance(raw, dict):
        raise ProjectError(f"{path}: [trims] must be a table of shot ids",
                           'e.g. [trims] "sh-1a2b3c4d" = { clip = "bikes.mp4#2", at = 1.5 }')
    for shot, value in raw.items():
        ok = isinstance(value, dict) and isinstance(value.get("clip"), str) \
            and isinstance(value.get("at"), (int, float)) and not isinstance(value.get("at"), bool) \
            and value["at"] >= 0
        if not ok:
            raise ProjectError(f"{path}: [trims] {shot!r} must be {{ clip = CLIP_ID, at = SECONDS }}",
                               'e.g. [trims] "sh-1a2b3c4d" = { clip = "bikes.mp4#2", at = 1.5 }')
        trims[shot] = (value["clip"], float(value["at"]))
    return Choices(pins=dict(pins), bans=frozenset(bans), trims=trims)


def save_choices(project: Path, choices: Choices) -> None:
    lines = ["# Pins keep a shot on a clip; bans keep clips out of the film.",
             "# Shot ids are in plan.json / report.md, clip ids in candidates.json / report.md.",
             "[pins]"]
    lines += [f"{json.dumps(shot)} = {json.dumps(clip)}" for shot, clip in sorted(choices.pins.items())]
    lines += ["", "[bans]", "clips = [" + ", ".join(json.dumps(c) for c in sorted(choices.bans)) + "]"]
    if choices.trims:
        lines += ["", "[trims]"]
        lines += [f"{json.dumps(shot)} = {{ clip = {json.dumps(clip)}, at = {at:.3f} }}"
                  for shot, (clip, at) in sorted(choices.trims.items())]
    project.mkdir(parents=True, exist_ok=True)
    write_atomic(project / "project.toml", "\n".join(lines) + "\n")
