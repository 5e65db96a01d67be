"""One studio session: a project, its Recutter (models and index kept loaded) and a worker.

Every change the page asks for (new script text, a pin, a ban, a trim, a shot to generate, a
style, a revert) is a job run by one worker thread, one at a time, followed by a recut. The page
reads :meth:`Studio.status` for progress and :meth:`Studio.snapshot` for the current cut. A job
that fails leaves the previous cut, film and script as they were; its message goes to the page.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from planner.errors import MontageError, ProjectError, ScriptError
from planner.plan import plan_text
from planner.shots import ShotPlan
from retrieval import candidates_for_plan, open_index
from retrieval.types import CandidateSet

from montage.film import read_timeline
from montage.film import FORMATS, export_project
from montage.optimize import EditDecision, list_styles, usable_span
from montage.pipeline import MakeOptions, MakeResult, Recutter, check_settings
from montage.project import (Choices, DamagedState, cut_dir, history, load_choices, load_state,
                             parse_setting, project_lock, revert, save_choices, show_value,
                             write_atomic)
from montage.studio.page import Media, cut_view, script_spans, settings_view
from montage.studio.playback import keep_playing, playing_file

__all__ = ["EXPORTS", "Media", "Studio", "UnknownItem", "script_spans"]

logger = logging.getLogger(__name__)


class UnknownItem(ProjectError):
    """A shot or clip the current cut does not have (the page answers 404)."""


EXPORTS = tuple(f"edit{ext}" for ext in FORMATS if ext != ".otio")
TRIM_STEP = 0.5  # seconds a nudge moves a clip's in-point
FINISH_AFTER = 1.0  # seconds without a new change before the finished film is written


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
        self._finished = threading.Event()  # no finished film is being written
        self._finished.set()
        self._snapshot: tuple[tuple, dict, bytes] | None = None
        self._media: dict[str, Media] = {}
        try:  # the project's settings, with the command line's on top: shown from the start
            self._settings_notes = self._resolve()
        except BaseException:
            self._hold.close()
            raise
        self._worker = threading.Thread(target=self._work, name="montage-studio", daemon=True)
        self._worker.start()

    def _resolve(self) -> list[str]:
        """Load the project's settings into the Recutter; what reading them assumed, and what
        this session's own settings change (recorded by the next cut)."""
        try:
            state = load_state(self.project)
        except DamagedState as exc:  # the first cut rebuilds it (montage.pipeline)
            return [exc.message]
        _, changes = self.recutter.resolve(state)
        notes = list(state.notes) if state is not None else []
        if changes:
            notes.append("the next cut changes " + ", ".join(changes))
        return notes

    def settings_notes(self) -> list[str]:
        """What reading the project's settings assumed, and what this session changes."""
        return list(self._settings_notes)

    def close(self) -> None:
        """Release the project's lock once the job under way (if any) has finished, and the
        finished film after it is written."""
        if self._job:
            self.wait(self._job, timeout=600)
        self._finished.wait(600)
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
                    "finishing": not self._finished.is_set(),
                    "cut": state.cut if state else 0,
                    "library_ok": self.library.is_dir(), "library": str(self.library)}

    def wait(self, job: int, timeout: float = 120.0) -> dict:
        """Block until ``job`` is finished, and the finished film after it written (for tests
        and benchmarks); returns the status."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.status()
            if s["done"] >= job and s["state"] != "working" and not s["finishing"]:
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

    def _warm(self) -> None:
        """Load what the recut of an edited sentence needs (the parser, the index and its text
        model) before the first save asks for it."""
        try:
            plan = plan_text("A red door opens slowly.")
            candidates_for_plan(open_index(self.library), plan, top=1)
        except MontageError:  # no index yet: the first cut makes it
            pass
        except Exception:  # noqa: BLE001 - a warm-up never stops the studio
            logger.debug("studio warm-up failed", exc_info=True)

    def _work(self) -> None:
        self._warm()
        queued = None
        while True:
            job, what, change, recut = queued or self._jobs.get()
            queued = None
            with self._status_lock:
                self._state, self._stage, self._error = "working", what, None
                self._log.clear()
                self._log.append(what)
            error = None
            before = self.recutter.options  # a job that fails leaves the settings as they were
            try:
                if change is not None:
                    change()
                if recut:  # a change of settings is said by the recut itself
                    plain = what in ("save the script", "first cut") or \
                        what.startswith(("settings:", "style "))
                    self._cut("" if plain else what)
            except MontageError as exc:
                line = re.search(re.escape(str(self.script)) + r":(\d+):", exc.message)
                error = {"message": exc.message, "hint": exc.hint or "", "what": what,
                         "line": int(line.group(1)) if line else None}
            except Exception as exc:  # noqa: BLE001 - a bug must reach the page, not kill the worker
                logger.exception("studio job %r failed", what)  # the traceback, for a bug report
                error = {"message": f"{type(exc).__name__}: {exc}", "hint": "this is a bug in "
                         "montage; the previous cut is unchanged", "what": what, "line": None}
            if error is not None and recut:
                self.recutter.set_options(before)
            with self._status_lock:
                self._state = "error" if error else "idle"
                self._error = error
                self._done = job
                self._stage = "" if error is None else self._stage
                if self.recutter.pending:  # the page plays the preview; the finished film follows
                    self._finished.clear()
            if not self._finished.is_set():
                try:  # a save right after this one: its own cut supersedes the finished film
                    queued = self._jobs.get(timeout=FINISH_AFTER)
                except queue.Empty:
                    self._finish()

    def _finish(self) -> None:
        """Write the finished film (AAC) and contact sheet of the cut the page now plays."""
        try:
            self.recutter.finish()
        except MontageError as exc:  # the preview stays the film; the next cut finishes its own
            logger.warning("the finished film was not written: %s (%s)", exc.message, exc.hint)
        except Exception:  # noqa: BLE001 - a bug is reported, the worker goes on
            logger.exception("writing the finished film failed")
        finally:
            self._finished.set()

    def _cut(self, note: str = "") -> MakeResult:
        if not self.library.is_dir():
            raise ProjectError(f"the footage library is gone: {self.library}",
                               "put the folder back (or remount it); the project and its films "
                               "are untouched")
        result = self.recutter.cut(self.script, self.out, note, preview=True)
        keep_playing(self.project, self.out, result.cut)  # before the finished film replaces it
        return result

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

        def apply() -> None:  # ScriptError with the line; nothing written yet (the plan is kept
            plan_text(text, str(self.script), cache=self.project / "cache" / "plans")  # for the recut)
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

        def apply() -> None:
            o = self.recutter.options
            self.recutter.change(generate=o.generate | {shot},
                                 generator=o.generator if o.generator != "off" else "standin")
            self._choices(lambda c: replace(c, pins={k: v for k, v in c.pins.items() if k != shot},
                                            trims={k: v for k, v in c.trims.items() if k != shot}))()
        return self.submit(f"generate shot {self._number(shot)}", apply)

    def set_style(self, style: str) -> int:
        if style not in list_styles():
            raise ProjectError(f"unknown style {style!r}", "one of " + ", ".join(list_styles()))
        return self.submit(f"style {style}", lambda: self.recutter.change(style=style))

    def set_settings(self, settings: dict) -> int:
        """Change settings (``{"name": value}`` in their JSON form: see
        :func:`montage.project.parse_setting`); the recut records what changed."""
        if not settings:
            raise ProjectError("no setting to change", "send {\"settings\": {\"style\": \"calm\"}}")
        values = {name: parse_setting(name, value, self.project) for name, value in settings.items()}
        check_settings(values)
        if "voice" in values and values["voice"] is not None:
            values.setdefault("narrate", True)
        what = ", ".join(f"{k} {show_value(v)}" for k, v in values.items())
        return self.submit(f"settings: {what}", lambda: self.recutter.change(**values))

    def revert(self, cut: int) -> int:
        def apply() -> None:
            revert(self.project, cut, progress=self._progress)
            kept = cut_dir(self.project, cut) / "script.txt"
            if kept.is_file():  # the words come back with the cut
                write_atomic(self.script, kept.read_text(encoding="utf-8"))
            # the settings come back with the cut: nothing of this session's stays on top
            self.recutter.set_options(replace(self.recutter.options, given=frozenset()))
            self.recutter.resolve()
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
                "shots": [], "history": [], "film": None, "seconds": 0.0, "bans": [],
                "settings": settings_view(self.recutter.options.settings(), self.project),
                "settings_notes": self._settings_notes, "skipped": _skipped(self.library)}
        if state is None:
            return base
        folder = cut_dir(self.project, state.cut)
        choices = load_choices(self.project)
        plan, edl, shots, media = cut_view(folder, text, choices, self.library)
        self._media.update(media)  # ids of an earlier cut keep working until the page reloads
        base.update(cut=state.cut, shots=shots, seconds=round(edl.seconds, 3),
                    film=f"/media/film/{state.cut}.mp4",
                    scene_titles=list(plan.scene_titles), bans=sorted(choices.bans),
                    history=[{"cut": h.cut, "time": h.time, "summary": h.summary,
                              "shots": h.shots, "seconds": h.seconds} for h in history(self.project)])
        return base

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

    def playing(self, cut: int) -> Path | None:
        """What the page plays for cut ``cut``: the film as the cut made it (see
        :mod:`montage.studio.playback`), or the project's film."""
        return playing_file(self.project, cut) or self.film()

    def download(self, name: str) -> Path | None:
        """The project's artifacts by their fixed names, and the cut exported to an editor's
        format (``edit.fcpxml``, ``edit.otioz``, ...: made on first request, kept per cut);
        any other name is None (a 404)."""
        if name == "film.mp4":
            self._finished.wait(600)  # the finished film, not the preview
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


def _skipped(library: Path) -> list[dict]:
    """The library's files its index did not take, each with why (the page lists them)."""
    from retrieval import skipped_files
    from retrieval.media import split_reason

    return [dict(zip(("path", "why", "detail"), (p, *split_reason(r))))
            for p, r in skipped_files(library)]
