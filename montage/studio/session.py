"""One studio session: a project, its Recutter (models and index kept loaded) and a worker.

Every change the page asks for (new script text, a pin, a ban, a trim, a shot to generate, a
style, a revert) is a job run by one worker thread, one at a time, followed by a recut. The page
reads :meth:`Studio.status` for progress and :meth:`Studio.snapshot` for the current cut. A job
that fails leaves the previous cut, film and script as they were; its message goes to the page.
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import threading
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from planner.errors import MontageError, ProjectError, ScriptError
from planner.plan import plan_text
from planner.shots import ShotPlan
from retrieval.types import CandidateSet

from montage.film import read_timeline
from montage.film import FORMATS, export_project
from montage.optimize import EditDecision, list_styles, usable_span
from montage.pipeline import MakeOptions, MakeResult, Recutter
from montage.project import (Choices, cut_dir, history, load_choices, load_state, project_lock,
                             revert, save_choices, write_atomic)

logger = logging.getLogger(__name__)


class UnknownItem(ProjectError):
    """A shot or clip the current cut does not have (the page answers 404)."""


EXPORTS = tuple(f"edit{ext}" for ext in FORMATS if ext != ".otio")
TRIM_STEP = 0.5  # seconds a nudge moves a clip's in-point
CANDIDATES_SHOWN = 8


@dataclass(frozen=True)
class Media:
    """A file the page may ask for, by id: never by a path taken from the request."""

    path: Path
    kind: str  # "video" | "still"
    at: float  # seconds into the file of the frame that stands for it
    start: float
    end: float


class Studio:
    """The project behind one studio server."""

    def __init__(self, script: Path, library: Path, project: Path, out: Path,
                 options: MakeOptions = MakeOptions()) -> None:
        self.script = Path(script).resolve()
        self.library = Path(library).resolve()
        self.project = Path(project).resolve()
        self.out = Path(out).resolve()
        # the studio is the project's one writer for as long as it runs (a `montage make` on
        # the same project is told so); its own cuts take the same lock again, re-entrantly
        self._hold = ExitStack()
        self._hold.enter_context(project_lock(self.project, "montage studio"))
        self.recutter = Recutter(self.library, self.project, replace(options, progress=False),
                                 on_progress=self._progress, command="montage studio")
        self._status_lock = threading.Lock()
        self._log: deque[str] = deque(maxlen=40)
        self._state = "idle"
        self._stage = ""
        self._error: dict | None = None
        self._job = 0
        self._done = 0
        self._jobs: queue.Queue = queue.Queue()
        self._snapshot: tuple[tuple, dict, bytes] | None = None
        self._media: dict[str, Media] = {}
        self._worker = threading.Thread(target=self._work, name="montage-studio", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Release the project's lock once the job under way (if any) has finished."""
        if self._job:
            self.wait(self._job, timeout=600)
        self._hold.close()

    # -- status -------------------------------------------------------------------------------
    def _progress(self, text: str) -> None:
        with self._status_lock:
            self._stage = text
            self._log.append(text)

    def status(self) -> dict:
        state = load_state(self.project) if (self.project / "state.json").is_file() else None
        with self._status_lock:
            return {"state": self._state, "stage": self._stage, "log": list(self._log)[-8:],
                    "job": self._job, "done": self._done, "error": self._error,
                    "cut": state.cut if state else 0,
                    "library_ok": self.library.is_dir(), "library": str(self.library)}

    def wait(self, job: int, timeout: float = 120.0) -> dict:
        """Block until ``job`` is finished (for tests and benchmarks); returns the status."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.status()
            if s["done"] >= job and s["state"] != "working":
                return s
            time.sleep(0.02)
        raise TimeoutError(f"studio job {job} still running after {timeout} s")

    # -- jobs -----------------------------------------------------------------------------------
    def submit(self, what: str, change: Callable[[], None] | None, *, recut: bool = True) -> int:
        """Queue ``change`` (run in the worker) and, after it, a recut; returns the job number."""
        with self._status_lock:
            self._job += 1
            job = self._job
        self._jobs.put((job, what, change, recut))
        return job

    def _work(self) -> None:
        while True:
            job, what, change, recut = self._jobs.get()
            with self._status_lock:
                self._state, self._stage, self._error = "working", what, None
                self._log.clear()
                self._log.append(what)
            error = None
            try:
                if change is not None:
                    change()
                if recut:
                    self._cut("" if what in ("save the script", "first cut") else what)
            except MontageError as exc:
                line = re.search(re.escape(str(self.script)) + r":(\d+):", exc.message)
                error = {"message": exc.message, "hint": exc.hint or "", "what": what,
                         "line": int(line.group(1)) if line else None}
            except Exception as exc:  # noqa: BLE001 - a bug must reach the page, not kill the worker
                logger.exception("studio job %r failed", what)  # the traceback, for a bug report
                error = {"message": f"{type(exc).__name__}: {exc}", "hint": "this is a bug in "
                         "montage; the previous cut is unchanged", "what": what, "line": None}
            with self._status_lock:
                self._state = "error" if error else "idle"
                self._error = error
                self._done = job
                self._stage = "" if error is None else self._stage

    def _cut(self, note: str = "") -> MakeResult:
        if not self.library.is_dir():
            raise ProjectError(f"the footage library is gone: {self.library}",
                               "put the folder back (or remount it); the project and its films "
                               "are untouched")
        return self.recutter.cut(self.script, self.out, note)

    def start(self) -> int | None:
        """Make the first cut when the project has none (or its script changed since)."""
        state = load_state(self.project)
        if state is not None and (cut_dir(self.project, state.cut) / "script.txt").is_file():
            kept = (cut_dir(self.project, state.cut) / "script.txt").read_text(encoding="utf-8")
            if kept == self.read_script():
                return None
        return self.submit("first cut" if state is None else "recut from the script", None)

    # -- what the page can change -------------------------------------------------------------
    def read_script(self) -> str:
        try:
            return self.script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScriptError(f"{self.script}: cannot be read ({exc})",
                              "check the file, then reload the page") from None

    def save_script(self, text: str) -> int:
        """Check the text with the planner first (in the worker, which owns spaCy): a text it
        cannot read is refused and the file is not touched; otherwise write it and recut."""
        text = text.replace("\r\n", "\n")

        def apply() -> None:
            plan_text(text, str(self.script))  # ScriptError with the line; nothing written yet
            write_atomic(self.script, text)
        return self.submit("save the script", apply)

    def _choices(self, change: Callable[[Choices], Choices]) -> Callable[[], None]:
        def apply() -> None:
            save_choices(self.project, change(load_choices(self.project)))
        return apply

    def pin(self, shot: str, clip: str) -> int:
        self._require_shot(shot)
        self._require_clip(shot, clip)
        return self.submit(f"use {clip} for shot {self._number(shot)}", self._choices(
            lambda c: replace(c, pins={**c.pins, shot: clip},
                              trims={k: v for k, v in c.trims.items() if k != shot})))

    def unpin(self, shot: str) -> int:
        self._require_shot(shot)
        return self.submit(f"unpin shot {self._number(shot)}", self._choices(
            lambda c: replace(c, pins={k: v for k, v in c.pins.items() if k != shot},
                              trims={k: v for k, v in c.trims.items() if k != shot})))

    def ban(self, clip: str) -> int:
        self._require_clip(None, clip)
        return self.submit(f"ban {clip}", self._choices(  # a ban also lifts pins to the clip
            lambda c: replace(c, bans=c.bans | {clip},
                              pins={k: v for k, v in c.pins.items() if v != clip},
                              trims={k: v for k, v in c.trims.items() if v[0] != clip})))

    def unban(self, clip: str) -> int:
        return self.submit(f"unban {clip}", self._choices(lambda c: replace(c, bans=c.bans - {clip})))

    def trim(self, shot: str, steps: int) -> int:
        """Move the shot's in-point by ``steps`` x TRIM_STEP within its clip (pins the clip)."""
        d, rate = self._decision(shot)
        if not d.library_shot or d.kind != "video":
            raise ProjectError(f"shot {self._number(shot)} is a {d.kind if d.library_shot else 'title card'}"
                               ": only video clips can be trimmed",
                               "choose a video candidate first")
        media = self.media_for_clip(d.library_shot)
        first, last = usable_span(media.start, media.end, rate)  # as the optimizer trims
        step = round(Fraction(TRIM_STEP).limit_denominator(1000) * rate)
        frame = min(max(d.source_in + steps * step, first), max(first, last - d.frames))
        if frame == d.source_in:
            raise ProjectError(f"shot {self._number(shot)} already starts as "
                               f"{'late' if steps > 0 else 'early'} as its clip allows",
                               "trim the other way, or choose a longer clip")
        at = float(Fraction(frame) / rate)
        return self.submit(f"trim shot {self._number(shot)} to start at {at:.2f} s", self._choices(
            lambda c: replace(c, pins={**c.pins, shot: d.library_shot},
                              trims={**c.trims, shot: (d.library_shot, round(at, 3))})))

    def generate(self, shot: str) -> int:
        self._require_shot(shot)
        o = self.recutter.options
        options = replace(o, generate=o.generate | {shot},
                          generator=o.generator if o.generator != "off" else "standin")

        def apply() -> None:
            self.recutter.set_options(options)
            self._choices(lambda c: replace(c, pins={k: v for k, v in c.pins.items() if k != shot},
                                            trims={k: v for k, v in c.trims.items() if k != shot}))()
        return self.submit(f"generate shot {self._number(shot)}", apply)

    def set_style(self, style: str) -> int:
        if style not in list_styles():
            raise ProjectError(f"unknown style {style!r}", "one of " + ", ".join(list_styles()))
        options = replace(self.recutter.options, style=style)
        return self.submit(f"style {style}", lambda: self.recutter.set_options(options))

    def revert(self, cut: int) -> int:
        def apply() -> None:
            revert(self.project, cut, progress=self._progress)
            kept = cut_dir(self.project, cut) / "script.txt"
            if kept.is_file():  # the words come back with the cut
                write_atomic(self.script, kept.read_text(encoding="utf-8"))
        return self.submit(f"go back to cut {cut}", apply, recut=False)

    # -- reading the current cut ----------------------------------------------------------------
    def _files(self) -> tuple:
        out = []
        for path in (self.project / "state.json", self.project / "project.toml", self.script):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((None, None))
        return tuple(out)

    def snapshot(self) -> dict:
        """The current cut as the page shows it (cached until a project file changes)."""
        key = self._files()
        cached = self._snapshot
        if cached is not None and cached[0] == key:
            return cached[1]
        data = self._build_snapshot()
        page = {**data, "shots": [{k: v for k, v in s.items() if k != "candidates"}
                                  for s in data["shots"]]}
        self._snapshot = (key, data, json.dumps(page).encode())
        return data

    def page_json(self) -> bytes:
        """The snapshot as the page loads it: every shot without its candidates (those come
        with :meth:`shot`, when a shot is selected), so a 500-shot project loads quickly."""
        self.snapshot()
        return self._snapshot[2]

    def shot(self, shot_id: str) -> dict | None:
        return next((s for s in self.snapshot()["shots"] if s["id"] == shot_id), None)

    # A cut's history folder never changes once written, so reading the current cut from there
    # (not from the copies at the project's top, replaced one by one during a recut) always
    # gives a plan, an edit and candidates that belong together.
    def _current(self) -> Path:
        state = load_state(self.project)
        if state is None:
            raise ProjectError(f"{self.project} holds no cut yet", "wait for the first cut")
        return cut_dir(self.project, state.cut)

    def _candidates(self) -> CandidateSet:
        return CandidateSet.from_json((self._current() / "candidates.json").read_text(encoding="utf-8"))

    def _build_snapshot(self) -> dict:
        state = load_state(self.project)
        try:
            text, problem = self.read_script(), None
        except ScriptError as exc:  # changed by another program since: say so, show the cut
            text, problem = "", f"{exc.message} ({exc.hint})"
        base = {"script": text, "script_problem": problem, "script_path": str(self.script), "library": str(self.library),
                "styles": list_styles(), "style": self.recutter.options.style, "cut": 0,
                "shots": [], "history": [], "film": None, "seconds": 0.0, "bans": []}
        if state is None:
            return base
        folder = cut_dir(self.project, state.cut)
        plan = ShotPlan.load(folder / "plan.json")
        edl = read_timeline(folder / "edit.otio")
        cands = CandidateSet.from_json((folder / "candidates.json").read_text(encoding="utf-8"))
        choices = load_choices(self.project)
        media: dict[str, Media] = {}
        by_shot = {c.shot_id: c for c in cands.shots}
        spans = script_spans(text, plan)
        rate = edl.rate
        shots = []
        for n, (p, d, start) in enumerate(zip(plan.shots, edl.decisions, edl.starts()), 1):
            hits = by_shot.get(p.id).hits if p.id in by_shot else ()
            cands_out = []
            for h in hits[:CANDIDATES_SHOWN]:
                token = self._register(media, h.shot.id, h.shot.path, h.shot.kind, h.moment,
                                       h.shot.start, h.shot.end)
                cands_out.append({"clip": h.shot.id, "score": round(h.score, 3), "kind": h.shot.kind,
                                  "media": token, "chosen": h.shot.id == d.library_shot,
                                  "banned": h.shot.id in choices.bans,
                                  "generated": h.shot.id.startswith("generated:"),
                                  "seconds": round(h.shot.end - h.shot.start, 2)})
            token = None
            if d.library_shot:
                mid = float(Fraction(d.source_in) / rate + Fraction(d.frames, 2) / rate)
                token = self._register(media, d.library_shot, d.media, d.kind,
                                       mid if d.kind == "video" else None, 0.0, 0.0, chosen=True)
            at = float(Fraction(start) / rate)
            shots.append({
                "n": n, "id": p.id, "text": p.text, "scene": p.scene, "line": p.line,
                "span": spans.get(p.id), "start": round(at, 3),
                "seconds": round(float(Fraction(d.frames) / rate), 3),
                "source": d.source, "kind": d.kind, "clip": d.library_shot, "media": token,
                "score": round(d.score, 3), "reason": d.reason, "runner_up": d.runner_up,
                "decided_by": d.decided_by, "bends": list(d.bends),
                "costs": [[t, round(v, 3)] for t, v in d.costs if v],
                "fill": _fill_facts(d), "pinned": choices.pins.get(p.id),
                "trimmed": p.id in choices.trims,
                "candidates": cands_out})
        self._media.update(media)  # ids of an earlier cut keep working until the page reloads
        base.update(cut=state.cut, shots=shots, seconds=round(edl.seconds, 3),
                    film=f"/media/film/{state.cut}.mp4",
                    scene_titles=list(plan.scene_titles), bans=sorted(choices.bans),
                    history=[{"cut": h.cut, "time": h.time, "summary": h.summary,
                              "shots": h.shots, "seconds": h.seconds} for h in history(self.project)])
        return base

    def _register(self, media: dict[str, Media], clip: str, path: str, kind: str,
                  at: float | None, start: float, end: float, *, chosen: bool = False) -> str:
        token = hashlib.sha1(f"{clip}|{at}".encode()).hexdigest()[:16]
        if token not in media:
            full = Path(path)
            if not full.is_absolute():
                full = self.library / full
            mid = at if at is not None else (start + end) / 2
            media[token] = Media(path=full, kind="still" if kind == "still" else "video",
                                 at=mid if kind != "still" else 0.0, start=start, end=end)
        return token

    def media(self, token: str) -> Media | None:
        """The file behind an id of the current snapshot, if it lies inside the library or the
        project (a symlink out of them is refused)."""
        self.snapshot()
        m = self._media.get(token)
        if m is None:
            return None
        try:
            real = m.path.resolve(strict=True)
        except OSError:
            return None
        roots = (self.library, self.project)
        if not any(real == r or r in real.parents for r in roots) or not real.is_file():
            return None
        return replace(m, path=real)

    def media_for_clip(self, clip: str) -> Media:
        for m_shot in self._candidates().shots:
            for h in m_shot.hits:
                if h.shot.id == clip:
                    path = Path(h.shot.path)
                    return Media(path if path.is_absolute() else self.library / path,
                                 h.shot.kind, h.moment or 0.0, h.shot.start, h.shot.end)
        raise UnknownItem(f"clip {clip!r} is not a candidate of this cut",
                           "reload the page: the cut may have changed")

    def film(self) -> Path | None:
        state = load_state(self.project)
        if state is None:
            return None
        path = Path(state.film)
        return path if path.is_file() else None

    def download(self, name: str) -> Path | None:
        """The project's artifacts by their fixed names, and the cut exported to an editor's
        format (``edit.fcpxml``, ``edit.otioz``, ...: made on first request, kept per cut);
        any other name is None (a 404)."""
        film = self.film()
        files = {"film.mp4": film, "film.srt": film.with_suffix(".srt") if film else None,
                 "edit.otio": self.project / "edit.otio", "report.md": self.project / "report.md",
                 "contact.png": self.project / "contact.png"}
        if name in files:
            path = files[name]
            return path if path is not None and path.is_file() else None
        if name not in EXPORTS:
            return None
        state = load_state(self.project)
        if state is None:
            return None
        path = self.project / "exports" / f"cut-{state.cut:04d}" / name
        if not path.is_file():
            export_project(cut_dir(self.project, state.cut) / "edit.otio", path)
        return path

    # -- checks ---------------------------------------------------------------------------------
    def _number(self, shot: str) -> int:
        for s in self.snapshot()["shots"]:
            if s["id"] == shot:
                return s["n"]
        return 0

    def _require_shot(self, shot: str) -> None:
        if not any(s["id"] == shot for s in self.snapshot()["shots"]):
            raise UnknownItem(f"no shot {shot!r} in the current cut", "reload the page")

    def _require_clip(self, shot: str | None, clip: str) -> None:
        shots = self.snapshot()["shots"]
        pool = [s for s in shots if shot is None or s["id"] == shot]
        if not any(c["clip"] == clip for s in pool for c in s["candidates"]) and \
                not any(s["clip"] == clip for s in pool):
            raise UnknownItem(f"clip {clip!r} is not a candidate of "
                               f"{'shot ' + str(self._number(shot)) if shot else 'this cut'}",
                               "choose one of the candidates shown")

    def _decision(self, shot: str) -> tuple[EditDecision, Fraction]:
        folder = self._current()
        plan, edl = ShotPlan.load(folder / "plan.json"), read_timeline(folder / "edit.otio")
        for p, d in zip(plan.shots, edl.decisions):
            if p.id == shot:
                return d, edl.rate
        raise UnknownItem(f"no shot {shot!r} in the current cut", "reload the page")


def script_spans(text: str, plan: ShotPlan) -> dict[str, list[int]]:
    """Where each shot's text stands in the script ([start, end) characters), found in order;
    whitespace may differ (the planner folds line breaks). Shots not found are left out."""
    spans: dict[str, list[int]] = {}
    pos = 0
    for shot in plan.shots:
        words = shot.text.split()
        if not words:
            continue
        pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
        m = pattern.search(text, pos)
        if m is None:
            continue
        spans[shot.id] = [m.start(), m.end()]
        pos = m.end()
    return spans


def _fill_facts(d) -> dict | None:
    """How a generated clip in the film measured (from its provenance), for the inspector."""
    if d.source != "generated" or not d.provenance:
        return None
    p = dict(d.provenance)
    return {"kind": "stand-in" if p.get("stand_in") == "yes" else "generated",
            **{k: p.get(k, "") for k in ("backend", "measured", "query", "made_from", "fills",
                                         "runner_up", "best_footage")}}
