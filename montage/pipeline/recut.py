"""Wire the four stages into one run: script -> plan -> candidates -> edit -> film.

The only place that knows every stage. A project folder keeps the last cut, so running again
after an edit of the script is a recut: the new plan is aligned with the old one, untouched
shots keep their clips, only the changed shots and their new neighbours are re-solved, and only
the clips that changed are encoded again. Nothing of the previous cut is replaced until the new
film is finished, so a failure leaves the previous film and state intact.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from planner.align import align
from planner.errors import ProjectError
from planner.plan import load_script
from planner.shots import ShotPlan
from retrieval import build_index
from retrieval import candidates_for_plan
from retrieval import open_index
from retrieval.types import CandidateSet, Hit, ShotCandidates

from montage.film import (clip_features, identity_lines, measure_identity, read_timeline,
                          render_edit, report_text, rhythm_plot, write_contact_sheet, write_srt,
                          write_timeline)
from montage.film import Soundtrack
from montage.optimize import EditDecisionList, Kept, RuleSet, Solution, load_rules, optimize
from .generate import (TRIES, cast_faces, cast_lines, fill_missing, is_fill, mark_generated,
                       merge, second_round)
from montage.project import (Choices, DamagedState, ProjectState, cut_dir, disk_full_is_an_error,
                             last_cut, load_choices, load_state, project_lock, rebuild_state,
                             record_cut, save_state, settle, staged_film, write_atomic)
from montage.sound import prepare_sound


@dataclass(frozen=True)
class MakeOptions:
    """Everything a user can set for one `montage make`."""

    embedder: str = "proxy"
    style: str = "default"  # a preset in assets/rules/ or a path to a TOML rule set
    top: int = 10
    threshold: float | None = None  # overrides the rule set's placeholder threshold
    width: int = 1280
    height: int = 720
    rate: Fraction = Fraction(25)
    progress: bool = True
    contact_sheet: bool = True
    generator: str = "off"  # "standin", "builtin[:WEIGHTS]", "diffusers:MODEL", several
    # comma-separated (the measured score picks among their fills), or "off"
    generate: frozenset[str] = frozenset()  # shot ids to generate whatever the library has
    fill_tries: int = TRIES  # fills each generator makes per generated shot (the best is kept)
    cast: Path | None = None  # cast.toml: names, descriptions, reference images, seeds
    wait: float = 0.0  # seconds to wait for another writer of the project (0: fail at once)
    narrate: bool = False  # speak each shot's sentence (Piper); a shot lasts as long as its speech
    voice: Path | None = None  # a Piper voice (.onnx) instead of the bundled one (implies narrate)
    music: Path | None = None  # music under the film; cuts land on its beats


@dataclass(frozen=True)
class MakeResult:
    film: Path
    project: Path
    cut: int
    shots: int
    placeholders: int
    seconds: float  # film length
    changes: str  # what the recut changed, e.g. "1 edited, 74 unchanged"
    kept: int  # shots that kept the clip and trim of the previous cut
    encoded: int  # clips encoded by this run (the rest came from the cache)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds


@dataclass(frozen=True)
class _Previous:
    """The last cut of a project; ``fresh`` when it used the same index and settings, so its
    candidates can be reused."""

    cut: int
    plan: ShotPlan
    candidates: CandidateSet
    edl: EditDecisionList
    fresh: bool


def default_project(out: Path) -> Path:
    """The project folder that goes with a film: `film.mp4` -> `film.montage/` beside it."""
    return out.with_name(out.stem + ".montage")


def check_output(out: Path, project: Path, library: Path) -> None:
    """Fail before any work if the film or project cannot be written, or would touch the library."""
    if out.suffix.lower() != ".mp4":
        raise ProjectError(f"output must be an .mp4 file: {out}", "pass --out NAME.mp4")
    lib = library.resolve()
    for target in (out.resolve(), project.resolve()):
        if target == lib or lib in target.parents:
            raise ProjectError(f"refusing to write inside the footage library: {target}",
                               "choose --out/--project outside the library; sources are never modified")
    if out.is_dir():
        raise ProjectError(f"output path is a folder: {out}", "pass a file name ending in .mp4")
    for folder in (out.parent, project):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create folder {folder}: {exc.strerror}",
                               "choose a writable --out / --project") from None
        probe = folder / f".montage-write-test-{id(folder)}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            raise ProjectError(f"folder is not writable: {folder}",
                               "choose a writable --out / --project") from None


class Recutter:
    """Makes and remakes the film of one project; keeps models and the index loaded between
    cuts (for `montage watch` and the studio), so a recut costs only what changed.

    ``on_progress``, when given, hears every stage and every encoded clip as one line of text
    (the studio shows them), whether or not ``options.progress`` prints them.
    """

    def __init__(self, library: Path, project: Path, options: MakeOptions = MakeOptions(),
                 on_progress: Callable[[str], None] | None = None,
                 command: str = "montage make") -> None:
        self.library = Path(library)
        self.project = Path(project)
        self.on_progress = on_progress
        self.command = command  # what another writer is told holds the project
        self.set_options(options)
        self._last: _Previous | None = None  # this object's last cut (kept for watch mode)

    def set_options(self, options: MakeOptions) -> None:
        """Other settings for the next cut (a style, a shot to generate); models stay loaded.
        A change of settings makes the next cut re-solve every shot, preferring the old clips."""
        self.rules: RuleSet = load_rules(options.style)
        self.options = options

    def _say(self, text: str, warn: bool = False) -> None:
        """Progress to the callback and (unless quiet) stderr; a warning is printed always."""
        if self.on_progress is not None:
            self.on_progress(text)
        if self.options.progress or warn:
            print(f"[montage] {text}", file=sys.stderr, flush=True)

    def _render_progress(self) -> bool | Callable[[str], None]:
        stop = _stop_after_clips()
        if self.on_progress is None and stop is None:
            return self.options.progress
        echo, callback = self.options.progress, self.on_progress

        def tell(text: str) -> None:
            if callback is not None:
                callback(text)
            if echo:
                print(text, file=sys.stderr, flush=True)
            if stop is not None:
                stop(text)
        return tell

    def settings(self) -> str:
        o = self.options
        rules = json.dumps(self.rules.to_dict(), sort_keys=True, default=str)
        return (f"{rules}|{o.threshold}|{o.width}x{o.height}@{o.rate}|top{o.top}|"
                f"{o.generator}|{sorted(o.generate)}|{o.cast}"
                + (f"|fills{o.fill_tries}" if o.generator != "off" else "")
                + (f"|narrate:{o.narrate}:{o.voice}|music:{o.music}"
                   if o.narrate or o.voice or o.music else ""))

    def cut(self, script: Path, out: Path, note: str = "") -> MakeResult:
        """Plan, choose and render; a recut when the project already holds a cut. ``note`` says
        why in the history (e.g. "style calm"), before what changed in the script. Holds the
        project's lock throughout: a second writer waits (``options.wait``) or is told who."""
        check_output(out, self.project, self.library)
        with project_lock(self.project, self.command, wait=self.options.wait > 0,
                          timeout=self.options.wait):
            with disk_full_is_an_error(self.project):
                return self._cut(script, out, note)

    def _cut(self, script: Path, out: Path, note: str) -> MakeResult:
        lib, project, o = self.library, self.project, self.options
        t: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            t[name] = round(t.get(name, 0.0) + now - clock, 4)  # a stage may come twice
            clock = now

        plan = load_script(script, cache=project / "cache" / "plans")  # unchanged: no spaCy
        sound = prepare_sound(plan, narrate=o.narrate, voice=o.voice, music=o.music,
                              cache=project / "cache", rate=o.rate, say=self._say)
        plan = sound.plan  # spoken shots last as long as their speech
        lap("plan")
        settle(project)  # finish a cut whose publication a kill cut short
        try:
            state = load_state(project)
        except DamagedState as exc:
            state = rebuild_state(project, lib, script, out)
            self._say(f"warning: {exc.message}; kept as state.json.damaged and rebuilt from "
                      + (f"cut {state.cut} in history/" if state else "nothing (no complete cut)"),
                      warn=True)
        if state is not None and Path(state.library) != lib.resolve():
            raise ProjectError(
                f"{project} was cut from the library {state.library}, not {lib.resolve()}",
                f"pass --library {state.library}, or choose a new --project for this library")
        choices = load_choices(project)

        self._say("index")
        build_index(lib, o.embedder, progress=o.progress)
        index = open_index(lib)
        _stop_at("indexed")
        # the vectors file is named by its content: a changed library gets a new one
        index_id = hashlib.sha1(repr((index.embedder_name, index.meta.get("vectors"),
                                      index.meta.get("rows"))).encode()).hexdigest()[:16]
        lap("index")

        previous = self._previous(state, index_id)
        candidates = self._candidates(index, plan, previous, choices)
        lap("search")

        generated = None
        searched = candidates
        # a shot pinned to a generated clip (the studio) is generated again, as one named
        asked = o.generate | {sid for sid, clip in choices.pins.items() if is_fill(clip)}
        pins = {sid: clip for sid, clip in choices.pins.items() if not is_fill(clip)}
        if o.generator != "off" or asked:
            generated = self._generate(plan, searched, index, asked)
            candidates = generated.candidates
            pins.update(generated.pins)
            lap("generate")

        keep, free, alignment = self._stability(plan, previous, choices, candidates, pins)
        gone = self._gone(previous, index)
        for sid in [sid for sid, k in keep.items() if k.library_shot in gone]:
            del keep[sid]  # its clip left the library: its footage is chosen anew
            free = free | {sid} if free is not None else None

        faces = cast_faces(generated, o.cast, plan)

        def solve(cands: CandidateSet):
            return optimize(plan, cands, rules=self.rules, threshold=o.threshold, rate=o.rate,
                            width=o.width, height=o.height, pins=pins, bans=choices.bans,
                            keep=keep, free=free, pacing=sound.pacing(),
                            cast_faces=faces)

        solution = solve(candidates)
        if generated is not None:
            cards = second_round(solution.edl, generated.attempted)
            if cards and generated.usable:  # generate them, then solve again
                lap("optimize")
                shown = frozenset(d.library_shot for d in solution.edl.decisions
                                  if d.library_shot)
                generated = merge(generated, self._generate(plan, searched, index, asked,
                                                            only=cards, avoid=shown))
                candidates = generated.candidates
                pins.update(generated.pins)
                lap("generate")
                solution = solve(candidates)
            solution = replace(solution, edl=mark_generated(solution.edl, generated))
        lap("optimize")
        _stop_at("solved")

        n = (state.cut if state else last_cut(project)) + 1
        changes = alignment.summary() if alignment else f"{len(plan.shots)} new"
        if note:
            changes = f"{note}; {changes}"
        soundtrack = sound.soundtrack(solution.edl)
        folder = self._record(n, plan, candidates, solution.edl, changes, script, soundtrack)
        lap("edit")

        self._say(f"render cut {n} ({changes})")
        staged = staged_film(out.resolve(), n)  # the film stays where it is until the commit
        rendered = render_edit(folder / "edit.otio", staged, cache=project / "cache",
                               progress=self._render_progress(), reuse=out.resolve())
        lap("render")

        cast = cast_lines(generated, plan, solution.edl) if generated is not None else []
        identity = identity_lines(measure_identity(staged, solution.edl, plan, faces,
                                                   cache=project / "cache"))
        self._prepare(folder, solution, plan, candidates, staged, out, changes, cast, soundtrack,
                      identity)
        _stop_at("state")
        # the commit: from here the new cut is the project's; settle() copies it into place
        save_state(project, ProjectState(library=str(lib.resolve()), embedder=index.embedder_name,
                                         index_id=index_id, script=str(script.resolve()),
                                         film=str(out.resolve()), settings=self.settings(), cut=n))
        _stop_at("committed")
        settle(project)
        self._last = _Previous(n, plan, candidates, solution.edl, fresh=True)
        lap("publish")
        kept = sum(1 for d in solution.edl.decisions
                   if d.shot_id in keep and _same(keep[d.shot_id], d))
        return MakeResult(film=out, project=project, cut=n, shots=len(plan.shots),
                          placeholders=sum(d.source == "placeholder" for d in solution.edl.decisions),
                          seconds=solution.edl.seconds, changes=changes, kept=kept,
                          encoded=rendered.encoded, timings=t)

    # -- steps -----------------------------------------------------------------------------
    def _threshold(self, candidates: CandidateSet) -> float:
        """The title-card threshold for ``candidates``' scores (their embedder's, unless the
        style or --threshold sets one)."""
        o = self.options
        if o.threshold is not None:
            return o.threshold
        return self.rules.for_embedder(candidates.embedder).placeholder_threshold

    def _generate(self, plan: ShotPlan, candidates: CandidateSet, index, force: frozenset[str],
                  only: frozenset[str] | None = None, avoid: frozenset[str] = frozenset()):
        """Generated clips for the shots the library cannot illustrate (montage.pipeline.generate)."""
        o = self.options
        spec = o.generator if o.generator != "off" else "standin"  # a shot named: a stand-in
        return fill_missing(plan, candidates, index=index, spec=spec,
                            threshold=self._threshold(candidates), library=self.library,
                            cache=(self.project / "cache" / "generated").resolve(),
                            width=o.width, height=o.height, rate=o.rate, force=force,
                            cast_file=o.cast, only=only, tries=o.fill_tries, avoid=avoid,
                            progress=o.progress)

    def _previous(self, state: ProjectState | None, index_id: str) -> "_Previous | None":
        """The last cut, to seed this one; None for a new project."""
        if state is None:
            return None
        fresh = state.index_id == index_id and state.settings == self.settings()
        if self._last is not None and self._last.cut == state.cut:  # watch mode: still in memory
            return replace(self._last, fresh=fresh)
        folder = cut_dir(self.project, state.cut)
        try:
            return _Previous(
                cut=state.cut, plan=ShotPlan.load(folder / "plan.json"),
                candidates=CandidateSet.from_json((folder / "candidates.json").read_text(encoding="utf-8")),
                edl=read_timeline(folder / "edit.otio"), fresh=fresh)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProjectError(f"{folder}: the last cut is damaged ({exc})",
                               "delete state.json to cut afresh (the history is kept)") from None

    def _gone(self, previous: "_Previous | None", index) -> set[str]:
        """The clips of the last cut no longer in the library as they were (the file deleted,
        or replaced by one without that span); each is said, and its shot re-solved."""
        if previous is None:
            return set()
        by_id = {ls.id: ls for ls in index.shots}
        rate = previous.edl.rate
        gone = set()
        for d in previous.edl.decisions:
            if not d.library_shot or d.library_shot.startswith("generated:"):
                continue
            clip = by_id.get(d.library_shot)
            fits = clip is not None and (clip.kind == "still" or (
                clip.start - 1 / rate <= d.source_in / rate
                and (d.source_in + d.frames) / rate <= clip.end + 1 / rate))
            if not fits:
                what = "deleted" if clip is None else "replaced: that span is no longer in it"
                self._say(f"warning: shot {d.shot_id} (\"{d.text[:60]}\"): its clip "
                          f"{d.library_shot} is gone from the library ({d.media} {what}); "
                          f"choosing its footage anew", warn=True)
                gone.add(d.library_shot)
        return gone

    def _candidates(self, index, plan: ShotPlan, previous: "_Previous | None",
                    choices: Choices) -> CandidateSet:
        """Reuse the last cut's candidates for shots it already had; search only new text."""
        reuse = {}
        if previous is not None and previous.fresh:  # same index and settings: same hits
            reuse = {c.shot_id: c for c in previous.candidates.shots}
        todo = ShotPlan(source=plan.source, shots=tuple(s for s in plan.shots if s.id not in reuse))
        found = {c.shot_id: c for c in candidates_for_plan(index, todo, top=self.options.top).shots} \
            if todo.shots else {}
        shots = [reuse.get(s.id) or found[s.id] for s in plan.shots]
        by_id = None
        for i, c in enumerate(shots):  # a pinned clip is always a candidate of its shot
            pin = choices.pins.get(c.shot_id)
            if pin and not is_fill(pin) and all(h.shot.id != pin for h in c.hits):
                by_id = by_id or {ls.id: ls for ls in index.shots}
                if pin not in by_id:
                    raise ProjectError(
                        f"{self.project / 'project.toml'}: shot {c.shot_id} is pinned to "
                        f"{pin!r}, which is not in the library index",
                        "unpin it (montage unpin), or pin a clip id from candidates.json")
                shots[i] = replace(c, hits=c.hits + (Hit(by_id[pin], 0.0),))
        return CandidateSet(library=str(self.library.resolve()), embedder=index.embedder_name,
                            shots=tuple(ShotCandidates(c.shot_id, c.query, c.hits) for c in shots))

    def _stability(self, plan: ShotPlan, previous: "_Previous | None", choices: Choices,
                   candidates: CandidateSet, pins: dict[str, str]):
        """What the last cut chose (kept where possible) and which shots are re-solved."""
        if previous is None:
            return {}, None, None
        alignment = align(previous.plan, plan)
        keep = {d.shot_id: Kept(d.library_shot, d.source_in, d.frames) for d in previous.edl.decisions}
        for change in alignment.changes:  # an edited sentence starts from its old clip
            if change.status == "edited" and change.previous in keep:
                keep[change.shot_id] = keep[change.previous]
        for shot in self.options.generate:  # asked to generate: the old clip has no claim
            keep.pop(shot, None)
        for shot, (clip, at) in choices.trims.items():  # a hand-set trim holds on its clip
            old = keep.get(shot)
            frames = old.frames if old is not None and old.library_shot == clip else 0
            keep[shot] = Kept(clip, round(Fraction(at).limit_denominator(1000) * self.options.rate), frames)
        if not previous.fresh:  # other settings or another index: re-solve all, still preferring the old
            return self._still_good(keep, candidates, choices), None, alignment
        free = set(alignment.touched)
        free |= {s for s, clip in pins.items() if keep.get(s, Kept("", 0, 0)).library_shot != clip}
        free |= {s for s, k in keep.items() if k.library_shot in choices.bans}
        free |= {s for s, (clip, at) in choices.trims.items() if s in keep}
        return keep, frozenset(free), alignment

    def _still_good(self, keep: dict[str, Kept], candidates: CandidateSet,
                    choices: Choices) -> dict[str, Kept]:
        """The kept choices that this index and these settings would still pick: the keep reward
        outweighs any match, so without this a new embedder version or a raised threshold would
        leave a clip it now rates below the card threshold in the film, and footage added for a
        title card would never replace it. Hand-set trims hold whatever the scores."""
        threshold = self._threshold(candidates)
        scores = {c.shot_id: {h.shot.id: h.score for h in c.hits} for c in candidates.shots}
        return {sid: k for sid, k in keep.items()
                if sid in choices.trims
                or (k.library_shot and scores.get(sid, {}).get(k.library_shot, -1.0) >= threshold)}

    def _record(self, n: int, plan: ShotPlan, candidates: CandidateSet, edl: EditDecisionList,
                changes: str, script: Path, sound: Soundtrack | None = None) -> Path:
        """history/NNNN/ with the plan, the edit and the script text it was cut from (so going
        back to a cut can bring its words back too)."""
        project = self.project
        project.mkdir(parents=True, exist_ok=True)
        files = {"plan.json": plan.to_json(),
                 "script.txt": script.read_text(encoding="utf-8", errors="replace")}
        folder = record_cut(project, n, files, changes, len(plan.shots), edl.seconds)
        write_timeline(edl, folder / "edit.otio", name=script.stem, sound=sound)
        return folder

    def _prepare(self, folder: Path, solution: Solution, plan: ShotPlan,
                 candidates: CandidateSet, staged: Path, out: Path, changes: str,
                 cast: list[str], sound: Soundtrack | None = None,
                 identity: list[str] | None = None) -> None:
        """Every artifact of the new cut, in its history folder (montage.project.publish
        copies them into place after the commit)."""
        write_atomic(folder / "candidates.json", candidates.to_json())
        write_srt(solution.edl, folder / "film.srt", sound=sound)
        if self.options.contact_sheet:
            write_contact_sheet(staged, solution.edl, folder / "contact.png",
                                cache=self.project / "cache" / "thumbs")
        rhythm_plot(solution.edl, clip_features(candidates), folder / "rhythm.png")
        write_atomic(folder / "report.md",
                     report_text(plan, candidates, solution, film=out, changes=changes,
                                 cast=cast, identity=identity or []))


STOP_AT = "MONTAGE_TEST_STOP_AT"  # tests: kill -9 this process at a named stage


def _stop_at(stage: str) -> None:
    """Fault tests: SIGKILL ourselves at ``stage`` when asked: indexed, solved, joining,
    state (the new cut written, its state not yet), committed (the state, not yet the film)."""
    if os.environ.get(STOP_AT) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _stop_after_clips() -> Callable[[str], None] | None:
    """Fault tests: a render progress listener that SIGKILLs us after N clips are encoded
    (``encoded:N``) or as the join starts (``joining``); None when no stop is asked."""
    stage = os.environ.get(STOP_AT, "")
    if stage.startswith("encoded:"):
        n = int(stage.split(":", 1)[1])
        return lambda text: os.kill(os.getpid(), signal.SIGKILL) \
            if text.startswith(f"render: clip {n}/") else None
    if stage == "joining":
        return lambda text: _stop_at("joining") if text.startswith("render: joining") else None
    return None


def _same(kept: Kept, d) -> bool:
    return (kept.library_shot, kept.source_in, kept.frames) == (d.library_shot, d.source_in, d.frames)


def make_film(script: Path, library: Path, out: Path, project: Path | None = None,
              options: MakeOptions = MakeOptions()) -> MakeResult:
    """Make (or recut) `out` from `script` and the footage under `library`."""
    return Recutter(library, project or default_project(out), options).cut(script, out)
