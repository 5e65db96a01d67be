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
import math
import sys
import time
from dataclasses import dataclass, replace
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

from montage.film import (finish_film, identity_lines, measure_identity, read_timeline,
                          render_edit, write_contact_sheet)
from montage.optimize import EditDecisionList, Kept, RuleSet, load_rules, optimize, raw_bars
from montage.project import (RENDERED, SETTINGS_FILE, Choices, DamagedState, ProjectState,
                             Settings, copy_atomic, cut_dir, disk_full_is_an_error, last_cut,
                             load_choices, load_state, project_lock, rebuild_state, save_state,
                             settings_json, settle, staged_film)
from montage.sound import prepare_sound

from .artifacts import MakeResult, prepare, record
from .choose import choose_models
from .changes import fingerprints, read_rendered, rendered_json, shot_changes, summary
from .faults import STOP_AT, stop_after_clips, stop_at
from .generate import TRIES, cast_lines, fill_missing, is_fill, mark_generated, merge
from .options import MakeOptions, check_output, default_project, resolve
from .rounds import (cast_faces, generator_model, offer_kept_fills, say_who_holds, second_round,
                     taken_footage)

_second_round = second_round  # the name tests know
__all__ = ["STOP_AT", "MakeOptions", "MakeResult", "Recutter", "check_output", "default_project",
           "make_film"]


@dataclass(frozen=True)
class _Previous:
    """The last cut of a project; ``fresh`` when it used the same index and settings, so its
    candidates can be reused."""

    cut: int
    plan: ShotPlan
    candidates: CandidateSet
    edl: EditDecisionList
    fresh: bool


class Recutter:
    """Makes and remakes the film of one project; keeps models and the index loaded between
    cuts (for `montage watch` and the studio), so a recut costs only what changed.

    The project remembers its settings (``state.json``): each cut starts from them, with the
    settings ``options.given`` names on top (all of them when ``given`` is None), and the
    history says what changed. ``on_progress``, when given, hears every stage and every
    encoded clip as one line of text (the studio shows them), whether or not
    ``options.progress`` prints them.
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
        self._pending: tuple[int, Path] | None = None  # a preview cut to finish
        self._told: set[str] = set()  # notes about the stored settings, said once
        self._announced: tuple[str, ...] = ()  # the model lines said (again when they change)

    def set_options(self, options: MakeOptions) -> None:
        """Other settings for the next cut (a style, a shot to generate); models stay loaded.
        A change of settings makes the next cut re-solve every shot, preferring the old clips."""
        if getattr(self, "options", None) is None or options.style != self.options.style:
            self.rules: RuleSet = load_rules(options.style)
        self.options = options

    def change(self, **values) -> None:
        """Change some settings for the next cut (they count as given: the history records them)."""
        o = self.options
        given = None if o.given is None else o.given | set(values)
        self.set_options(replace(o, given=given, **values))

    def resolve(self, state: ProjectState | None = None) -> tuple[Settings, list[str]]:
        """The settings the next cut uses: the project's, with this Recutter's own on top; and
        what they change (``name old -> new``). Says once what reading an old project assumed."""
        if state is None:
            try:
                state = load_state(self.project)
            except DamagedState:
                state = None
        for note in (state.notes if state is not None else ()):
            if note not in self._told:
                self._told.add(note)
                self._say(f"note: {note}", warn=True)
        stored = state.settings if state is not None else None
        merged, changes = resolve(self.options, stored)
        merged, lines = choose_models(replace(merged, given=self.options.given), stored,
                                      offline_generator=self.options.offline_generator)
        if lines != self._announced:  # which models, and how to get better ones
            for line in lines:
                self._say(line, warn=line.startswith("warning"))
            self._announced = lines
        self.set_options(merged)
        return merged.settings(), changes

    def _say(self, text: str, warn: bool = False) -> None:
        """Progress to the callback and (unless quiet) stderr; a warning is printed always."""
        if self.on_progress is not None:
            self.on_progress(text)
        if self.options.progress or warn:
            print(f"[montage] {text}", file=sys.stderr, flush=True)

    def _render_progress(self) -> bool | Callable[[str], None]:
        stop = stop_after_clips()
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

    def key(self) -> str:
        """Everything that decides the candidates and the edit as one string: a cut with the
        same key (and index) reuses the last cut's candidates. (Written as before settings were
        kept, so a project cut by an older montage recuts as fresh.)"""
        o = self.options
        rules = json.dumps(self.rules.to_dict(), sort_keys=True, default=str)
        return (f"{rules}|{o.threshold}|{o.width}x{o.height}@{o.rate}|top{o.top}|"
                f"{o.generator}|{sorted(o.generate)}|{o.cast}"
                + (f"|narrate:{o.narrate}:{o.voice}|music:{o.music}"
                   if o.narrate or o.voice or o.music else "")
                + (f"|seed:{o.seed}" if o.seed else "")
                + (f"|fills:{o.fill_tries}" if o.fill_tries != TRIES else ""))

    def cut(self, script: Path, out: Path, note: str = "", preview: bool = False) -> MakeResult:
        """Plan, choose and render; a recut when the project already holds a cut. ``note`` says
        why in the history (e.g. "style calm"), before what changed in the script. Holds the
        project's lock throughout: a second writer waits (``options.wait``) or is told who.

        ``preview`` (the studio): the cut is committed with a film whose sound is the clips'
        FLAC, joined without encoding, so it plays at once; :meth:`finish` then writes the
        AAC film and the contact sheet. Until then (or if the process dies first) the project's
        film plays everywhere a browser does, with lossless sound."""
        check_output(out, self.project, self.library)
        with project_lock(self.project, self.command, wait=self.options.wait > 0,
                          timeout=self.options.wait):
            with disk_full_is_an_error(self.project):
                result = self._cut(script, out, note, preview)
        if self.options.given is not None:  # recorded: from now on they are the project's
            self.set_options(replace(self.options, given=frozenset()))
        return result

    @property
    def pending(self) -> bool:
        """A preview cut waits for :meth:`finish`."""
        return self._pending is not None

    def finish(self) -> None:
        """The finished film (AAC) in place of the last preview cut's, and its contact sheet;
        nothing when a later cut has replaced it. Holds the project's lock."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        cut, out = pending
        with project_lock(self.project, self.command, wait=True, timeout=600), \
                disk_full_is_an_error(self.project):
            state = load_state(self.project)
            if state is None or state.cut != cut or Path(state.film) != out:
                return
            folder = cut_dir(self.project, cut)
            finish_film(folder / "edit.otio", out, self.project / "cache",
                        progress=self._render_progress())
            if self.options.contact_sheet:
                write_contact_sheet(out, read_timeline(folder / "edit.otio"), folder / "contact.png",
                                    cache=self.project / "cache" / "thumbs")
                copy_atomic(folder / "contact.png", self.project / "contact.png")

    def _cut(self, script: Path, out: Path, note: str, preview: bool = False) -> MakeResult:
        lib, project = self.library, self.project
        t: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            t[name] = round(t.get(name, 0.0) + now - clock, 4)  # a stage may come twice
            clock = now

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
        settings, changed = self.resolve(state)
        o = self.options
        if changed:
            note = "; ".join(filter(None, [note, "settings: " + ", ".join(changed)]))
        plan = load_script(script, cache=project / "cache" / "plans")  # unchanged: no spaCy
        sound = prepare_sound(plan, narrate=o.narrate, voice=o.voice, music=o.music,
                              cache=project / "cache", rate=o.rate, say=self._say)
        plan = sound.plan  # spoken shots last as long as their speech
        force = self._forced(plan)
        lap("plan")
        choices = load_choices(project)

        self._say("index")
        report = build_index(lib, o.embedder, progress=o.progress)
        index = open_index(lib, report.embedder)
        stop_at("indexed")
        if settings.embedder_model and settings.embedder_model != index.embedder_name:
            self._say(f"warning: the embedder {o.embedder!r} is now {index.embedder_name}, not "
                      f"{settings.embedder_model} as when this project was cut; every shot is "
                      "chosen again, preferring its old clip", warn=True)
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
        asked = force | {sid for sid, clip in choices.pins.items() if is_fill(clip)}
        pins = {sid: clip for sid, clip in choices.pins.items() if not is_fill(clip)}
        if o.generator != "off" or asked:
            generated = self._generate(plan, searched, index, asked)
            if previous is not None and o.generator != "off":
                generated = offer_kept_fills(generated, previous.candidates, previous.edl)
            candidates = generated.candidates
            pins.update(generated.pins)
            lap("generate")

        keep, free, alignment = self._stability(plan, previous, choices, candidates, asked, pins)
        gone = self._gone(previous, index)
        for sid in [sid for sid, k in keep.items() if k.library_shot in gone]:
            del keep[sid]  # its clip left the library: its footage is chosen anew
            free = free | {sid} if free is not None else None

        faces = cast_faces(generated, o.cast, plan)

        def solve(cands: CandidateSet):
            return optimize(plan, cands, rules=self.rules, threshold=o.threshold, rate=o.rate,
                            width=o.width, height=o.height, pins=pins, bans=choices.bans,
                            keep=keep, free=free, pacing=sound.pacing(), cast_faces=faces)

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
            edl = mark_generated(solution.edl, generated)
            taken = taken_footage(edl, searched, cards, self._bars(searched))
            solution = replace(solution, edl=say_who_holds(edl, taken))
        lap("optimize")
        stop_at("solved")

        n = (state.cut if state else last_cut(project)) + 1
        settings = replace(settings, embedder_model=index.embedder_name,
                           generator_model=generator_model(o.generator) or settings.generator_model)
        after = fingerprints(solution.edl)
        before = (read_rendered(cut_dir(project, previous.cut), previous.edl)
                  if previous is not None else {})
        changes, same = summary(alignment, before, after)
        if note:
            changes = f"{note}; {changes}"
        soundtrack = sound.soundtrack(solution.edl)
        folder = record(project, n, plan, solution.edl, changes, script, soundtrack,
                        {SETTINGS_FILE: settings_json(settings, project),
                         RENDERED: rendered_json(after, shot_changes(alignment, before, after))})
        lap("edit")

        self._say(f"render cut {n} ({changes})")
        staged = staged_film(out.resolve(), n)  # the film stays where it is until the commit
        rendered = render_edit(folder / "edit.otio", staged, cache=project / "cache",
                               progress=self._render_progress(), reuse=out.resolve(),
                               preview=preview)
        lap("render")

        cast = cast_lines(generated, plan, solution.edl) if generated is not None else []
        identity = identity_lines(measure_identity(staged, solution.edl, plan, faces,
                                                   cache=project / "cache"))
        prepare(folder, solution, plan, candidates, staged, out, changes, cast, soundtrack,
                contact=self.options.contact_sheet and not rendered.preview,
                thumbs=project / "cache" / "thumbs", skipped=index.skipped, identity=identity)
        stop_at("state")
        # the commit: from here the new cut is the project's; settle() copies it into place
        save_state(project, ProjectState(library=str(lib.resolve()), embedder=index.embedder_name,
                                         index_id=index_id, script=str(script.resolve()),
                                         film=str(out.resolve()), key=self.key(), cut=n,
                                         settings=settings))
        stop_at("committed")
        settle(project)
        self._pending = (n, out.resolve()) if rendered.preview else None
        self._last = _Previous(n, plan, candidates, solution.edl, fresh=True)
        lap("publish")
        return MakeResult(film=out, project=project, cut=n, shots=len(plan.shots),
                          placeholders=sum(d.source == "placeholder" for d in solution.edl.decisions),
                          seconds=solution.edl.seconds, changes=changes, kept=same,
                          encoded=rendered.encoded, timings=t)

    # -- steps -----------------------------------------------------------------------------
    def _forced(self, plan: ShotPlan) -> frozenset[str]:
        """The shots to generate whatever the library has: those of the settings that are in
        this plan (a remembered one whose sentence is gone is said and dropped; one named on
        the command line for this run must exist, or the generator says so)."""
        o = self.options
        ids = {s.id for s in plan.shots}
        named_now = o.given is None or "generate" in o.given
        gone = sorted(o.generate - ids)
        if gone and not named_now:
            self._say(f"note: shot(s) {', '.join(gone)} were to be generated but are no longer "
                      "in the script", warn=True)
            self.set_options(replace(o, generate=o.generate & ids))
        return self.options.generate

    def _bars(self, candidates: CandidateSet) -> dict[str, float]:
        """Each shot's card bar as a raw score of its query: the library's own bar moved by the
        style, or --threshold (montage.optimize.confidence)."""
        o = self.options
        rules = self.rules if o.threshold is None else self.rules.with_threshold(o.threshold)
        return raw_bars(candidates, rules)

    def _generate(self, plan: ShotPlan, candidates: CandidateSet, index, force: frozenset[str],
                  only: frozenset[str] | None = None, avoid: frozenset[str] = frozenset()):
        """Generated clips for the shots the library cannot illustrate (montage.pipeline.generate)."""
        o = self.options
        spec = o.generator if o.generator != "off" else "standin"  # a shot named: a stand-in
        return fill_missing(plan, candidates, index=index, spec=spec,
                            threshold=self._bars(candidates), library=self.library,
                            cache=(self.project / "cache" / "generated").resolve(),
                            width=o.width, height=o.height, rate=o.rate, force=force,
                            cast_file=o.cast, only=only, tries=o.fill_tries, avoid=avoid,
                            progress=o.progress, seed=o.seed)

    def _previous(self, state: ProjectState | None, index_id: str) -> "_Previous | None":
        """The last cut, to seed this one; None for a new project."""
        if state is None:
            return None
        fresh = state.index_id == index_id and state.key == self.key()
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
            reuse = {c.shot_id: c for c in previous.candidates.shots
                     if c.calibration is not None or not c.hits}  # else: from before calibration
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
                            shots=tuple(ShotCandidates(c.shot_id, c.query, c.hits, c.calibration)
                                        for c in shots))

    def _stability(self, plan: ShotPlan, previous: "_Previous | None", choices: Choices,
                   candidates: CandidateSet, force: frozenset[str], pins: dict[str, str]):
        """What the last cut chose (kept where possible) and which shots are re-solved."""
        if previous is None:
            return {}, None, None
        alignment = align(previous.plan, plan)
        keep = {d.shot_id: Kept(d.library_shot, d.source_in, d.frames, start=at)
                for d, at in zip(previous.edl.decisions, previous.edl.starts())}
        for change in alignment.changes:  # an edited sentence starts from its old clip
            if change.status == "edited" and change.previous in keep:
                keep[change.shot_id] = replace(keep[change.previous], edited=True)
        for shot in force:  # asked to generate: the old clip has no claim (unless it was generated)
            if not keep.get(shot, Kept("", 0, 0)).library_shot.startswith("generated:"):
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
        outweighs any match, so without this a new embedder version or a raised card bar would
        leave a clip it now rates below the bar in the film, and footage added for a title card
        would never replace it. Hand-set trims hold whatever the scores."""
        bars = self._bars(candidates)
        scores = {c.shot_id: {h.shot.id: h.score for h in c.hits} for c in candidates.shots}
        return {sid: k for sid, k in keep.items()
                if sid in choices.trims
                or (k.library_shot and scores.get(sid, {}).get(k.library_shot, -math.inf)
                    >= bars.get(sid, math.inf))}


def make_film(script: Path, library: Path, out: Path, project: Path | None = None,
              options: MakeOptions = MakeOptions()) -> MakeResult:
    """Make (or recut) `out` from `script` and the footage under `library`."""
    return Recutter(library, project or default_project(out), options).cut(script, out)
