"""The optimisation problem as integer arrays: options per shot, their rule terms, cut tables.

Built once from the plan, the candidates and a rule set; every solver (DP, CP-SAT, exhaustive
search) reads the same :class:`Problem` and scores an edit with :func:`evaluate`, so their
objectives agree to the unit. The objective is *maximised*: match rewards minus rule costs,
in milli-units of match score (``costs.SCALE``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import Callable

import numpy as np

from planner.errors import MontageError
from planner.shots import PlannedShot
from retrieval.types import Hit

from montage.optimize import costs
from montage.optimize.rules import RuleSet, default_rules

EDGE_FRAMES = 2  # keep clear of the frames next to a detected cut: detectors can be a frame off
MIN_COVER = 0.35  # a video shot must cover at least this share of the planned length...
MIN_SECONDS = 1.0  # ...and last at least this long, or it is not an option


class OptimizeError(MontageError):
    """No edit satisfies the hard constraints (pins, bans, reuse, placeholders), or a bad pin."""


@dataclass(frozen=True)
class Kept:
    """A shot's choice in the previous cut: ``library_shot`` "" means it was a title card.
    ``edited``: the choice of the sentence this one replaced (its length follows its new text);
    ``start``: the film frame it started at (-1: unknown)."""

    library_shot: str
    source_in: int = 0
    frames: int = 0
    edited: bool = False
    start: int = -1


@dataclass(frozen=True)
class Option:
    """One way to fill a planned shot: a library hit trimmed to fit, or the placeholder."""

    hit: Hit | None
    source_in: int
    frames: int
    value: float  # match value less the duration-fit penalty (placeholder: the card's value)
    shortfall: float = 0.0  # share of the planned length the clip cannot cover
    match: float = 0.0  # the hit's match value (montage.optimize.confidence), before that penalty

    @property
    def clip_id(self) -> str:
        return self.hit.shot.id if self.hit else ""


def frames_for(seconds: float, rate: Fraction) -> int:
    return max(1, round(Fraction(seconds).limit_denominator(1000) * rate))


def planned_seconds(shot: PlannedShot, rules: RuleSet) -> float:
    """The shot's length under the style's tempo and limits."""
    s = shot.duration * rules.tempo
    if rules.min_shot > 0:
        s = max(s, rules.min_shot)
    if rules.max_shot > 0:
        s = min(s, rules.max_shot)
    return s


@lru_cache(maxsize=65536)
def usable_span(start: float, end: float, rate: Fraction) -> tuple[int, int]:
    """The first and last frame of a shot a trim may use (clear of the detected cuts)."""
    first = math.ceil(Fraction(start).limit_denominator(1000) * rate) + EDGE_FRAMES
    last = math.floor(Fraction(end).limit_denominator(1000) * rate) - EDGE_FRAMES
    return first, last


def shot_options(shot: PlannedShot, hits: tuple[Hit, ...], rate: Fraction,
                 rules: RuleSet | None = None, kept: Kept | None = None, *,
                 want: int | None = None, floor: int = 0,
                 value: Callable[[float], float] | None = None) -> list[Option]:
    """The usable trims of each hit for this shot; videos too short for the shot are dropped.

    A longer clip is trimmed around the moment the search found closest to the shot's words
    (its best-matching keyframe), else to its middle (furthest from both detected cuts). A kept
    choice keeps its own trim when it still fits. ``want`` overrides the planned length (in
    frames; :mod:`montage.optimize.pacing` sets it from speech and beats) and ``floor`` drops
    every video shorter than that (a spoken shot must hold its sentence). ``value`` maps a
    hit's raw score to its match value (:class:`montage.optimize.confidence.ShotScale`; default:
    the raw score itself).
    """
    rules = rules or default_rules()
    if want is None:
        want = frames_for(planned_seconds(shot, rules), rate)
    w = rules.weight("duration")
    shortest = max(1, math.ceil(MIN_COVER * want), math.ceil(MIN_SECONDS * rate), floor)
    out: list[Option] = []
    for hit in hits:
        ls = hit.shot
        match = value(hit.score) if value is not None else hit.score
        if ls.is_still:
            out.append(Option(hit, 0, want, match, match=match))
            continue
        first, last = usable_span(ls.start, ls.end, rate)
        span = last - first
        if span < shortest:
            continue
        frames = min(want, span)
        source_in = first + (span - frames) // 2
        if hit.moment is not None:
            centre = round(Fraction(hit.moment).limit_denominator(1000) * rate)
            source_in = min(max(first, centre - frames // 2), last - frames)
        if kept is not None and kept.library_shot == ls.id and first <= kept.source_in <= last - frames:
            source_in = kept.source_in
        shortfall = (want - frames) / want
        out.append(Option(hit, source_in, frames, match - w * shortfall, shortfall, match))
    return out


@dataclass
class Problem:
    """Options, integer rule terms and class tables for one edit (see module docstring)."""

    rules: RuleSet
    shots: tuple[PlannedShot, ...]
    options: list[list[Option]]
    terms: list[dict[str, np.ndarray]]  # per shot: term -> signed milli-units per option
    clip: list[np.ndarray]  # per shot: clip number per option, -1 for the placeholder
    file: list[np.ndarray]  # per shot: source file number per option, -1 for the placeholder
    classes: dict[str, list[np.ndarray]]  # "bright"/"hue"/"camera"/"scale" -> per shot, per option
    aspects: list[tuple[str, str, np.ndarray]]  # (term, classes key, integer cost table)
    opens: list[bool]  # shot opens a scene
    faces: list[list[tuple[int, ...]]]  # per shot, per option: face identities shown
    characters: list[tuple[str, tuple[int, ...]]]  # character -> shots that name them
    clip_names: list[str]
    file_names: list[str]
    locked: dict[int, str] = field(default_factory=dict)  # shot -> "pinned" | "kept"
    scales: list = field(default_factory=list)  # per shot: its ShotScale (confidence), or None
    _cuts: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _unary: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _faces: list | None = field(default=None, repr=False)
    _cut_terms: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _flat: object = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.shots)

    def w(self, term: str) -> int:
        return round(self.rules.weight(term) * costs.SCALE)

    def unary(self, i: int) -> np.ndarray:
        """Summed per-shot terms of each option of shot ``i`` (cached)."""
        if i not in self._unary:
            self._unary[i] = sum(self.terms[i].values(), np.zeros(len(self.options[i]), dtype=np.int64))
        return self._unary[i]

    def face_tables(self) -> list[tuple[tuple[int, ...], list[np.ndarray]]]:
        """Per character: the shots that name them and can show a face, and per such shot an
        (options x identities) table, True where the option shows a face but not that identity.
        Identities are the character's candidates, sorted (cached)."""
        if self._faces is None:
            self._faces = []
            for _, shots in self.characters:
                ids = sorted({k for i in shots for f in self.faces[i] for k in f})
                rows = tuple(i for i in shots if any(self.faces[i]))
                if ids and rows:
                    self._faces.append((rows, [np.array([[bool(f) and k not in f for k in ids]
                                                          for f in self.faces[i]]) for i in rows]))
        return self._faces

    def restrict(self, fixed: dict[int, int]) -> "Problem":
        """A copy where each shot in ``fixed`` keeps only that option (its index becomes 0)."""
        return self.subset([[fixed[i]] if i in fixed else list(range(len(o)))
                            for i, o in enumerate(self.options)])

    def subset(self, keep: list[list[int]]) -> "Problem":
        """A copy where shot ``i`` keeps only options ``keep[i]`` (in that order)."""
        idx = [np.asarray(k, dtype=np.int64) for k in keep]
        return replace(
            self, options=[[o[k] for k in ks] for o, ks in zip(self.options, keep)],
            terms=[{t: v[ix] for t, v in d.items()} for d, ix in zip(self.terms, idx)],
            clip=[c[ix] for c, ix in zip(self.clip, idx)],
            file=[f[ix] for f, ix in zip(self.file, idx)],
            classes={key: [c[ix] for c, ix in zip(v, idx)] for key, v in self.classes.items()},
            faces=[[f[k] for k in ks] for f, ks in zip(self.faces, keep)],
            _cuts={}, _unary={}, _faces=None, _cut_terms={}, _flat=None)

    def aspect_active(self, term: str, i: int) -> bool:
        """Whether ``term`` applies to the cut between shot ``i`` and ``i + 1``."""
        return not (self.opens[i + 1] and term in costs.SCENE_BLIND)

    def cut_terms(self, i: int) -> dict[str, np.ndarray]:
        """Cut ``i`` -> ``i+1``: term -> (options of i) x (options of i+1) integer costs (cached)."""
        if i not in self._cut_terms:
            self._cut_terms[i] = self._make_cut_terms(i)
        return self._cut_terms[i]

    def _make_cut_terms(self, i: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for term, key, table in self.aspects:
            if self.aspect_active(term, i):
                a, b = self.classes[key][i], self.classes[key][i + 1]
                out[term] = out.get(term, 0) + table[np.ix_(a, b)]
        jw = self.w("jump_cut")
        if jw:
            fa, fb = self.file[i], self.file[i + 1]
            sa, sb = self.classes["scale"][i], self.classes["scale"][i + 1]
            same = (fa[:, None] == fb[None, :]) & (fa[:, None] >= 0) & (sa[:, None] == sb[None, :])
            out["jump_cut"] = same.astype(np.int64) * jw
        return out

    def cut(self, i: int) -> np.ndarray:
        """Total cost of cut ``i`` -> ``i+1`` per option pair (cached)."""
        if i not in self._cuts:
            shape = (len(self.options[i]), len(self.options[i + 1]))
            self._cuts[i] = sum(self.cut_terms(i).values(), np.zeros(shape, dtype=np.int64))
        return self._cuts[i]


@dataclass(frozen=True)
class Evaluation:
    """An edit scored term by term: ``per_shot[i]`` maps a term to its signed milli-units."""

    total: int
    per_shot: tuple[dict[str, int], ...]
    violations: tuple[str, ...]


def evaluate(p: Problem, choice: list[int]) -> Evaluation:
    """Score ``choice`` (one option index per shot) exactly as the solvers do."""
    per: list[dict[str, int]] = []
    for i, k in enumerate(choice):
        d = {t: int(v[k]) for t, v in p.terms[i].items() if v[k]}
        if i > 0:
            for t, m in p.cut_terms(i - 1).items():
                c = int(m[choice[i - 1], k])
                if c:
                    d[t] = d.get(t, 0) - c
        per.append(d)
    violations: list[str] = []
    gap = p.rules.reuse_gap
    last_use: dict[int, int] = {}
    files: set[int] = set()
    for i, k in enumerate(choice):
        c, f = int(p.clip[i][k]), int(p.file[i][k])
        if c >= 0:
            if c in last_use:
                if gap == 0 or i - last_use[c] < gap:
                    violations.append(f"{p.clip_names[c]} is used by shots {p.shots[last_use[c]].id} "
                                      f"and {p.shots[i].id} (reuse_gap = {gap})")
                _add(per[i], "reuse", -p.w("reuse"))
            last_use[c] = i
        if f >= 0:
            if f in files:
                _add(per[i], "variety", -p.w("variety"))
            files.add(f)
    for shot_index, penalty in character_mismatches(p, choice):
        _add(per[shot_index], "character", -penalty)
    return Evaluation(total=sum(sum(d.values()) for d in per), per_shot=tuple(per),
                      violations=tuple(violations))


def _add(d: dict[str, int], term: str, value: int) -> None:
    if value:
        d[term] = d.get(term, 0) + value


def character_mismatches(p: Problem, choice: list[int]) -> list[tuple[int, int]]:
    """(shot, penalty) for each shot that shows a character by another face than the film's.

    Each character gets the identity that costs least over the film (what the CP-SAT model's
    identity variables pick); ties go to the lowest identity number.
    """
    w = p.w("character")
    out: list[tuple[int, int]] = []
    if not w:
        return out
    for rows, tables in p.face_tables():
        miss = np.array([t[choice[i]] for i, t in zip(rows, tables)])  # shots x identities
        shown = np.array([bool(p.faces[i][choice[i]]) for i in rows])
        if shown.any():
            best = int(miss[shown].sum(axis=0).argmin())  # an identity some shot shows
            out.extend((i, w) for r, i in enumerate(rows) if miss[r, best])
    return out


class Flat:
    """Every option's per-shot value, clip and file, and every cut table, in flat arrays, so an
    edit is scored with a handful of vectorised lookups (the search scores thousands)."""

    def __init__(self, p: Problem):
        sizes = np.array([len(o) for o in p.options])
        self.start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.unary = np.concatenate([p.unary(i) for i in range(p.n)])
        self.clip = np.concatenate(p.clip)
        self.file = np.concatenate(p.file)
        self.width = sizes[1:]
        cuts = [p.cut(i).ravel() for i in range(p.n - 1)]
        self.cut_start = np.concatenate([[0], np.cumsum([len(c) for c in cuts])[:-1]]).astype(np.int64)
        self.cut = np.concatenate(cuts) if cuts else np.zeros(0, dtype=np.int64)

    def picked(self, choice: list[int]) -> np.ndarray:
        return self.start + np.asarray(choice)


def flat(p: Problem) -> Flat:
    if p._flat is None:
        p._flat = Flat(p)
    return p._flat


def score(p: Problem, choice: list[int]) -> int:
    """The objective of ``choice`` (fast: cached tables), whether it is feasible or not."""
    f = flat(p)
    at = f.picked(choice)
    total = int(f.unary[at].sum())
    if p.n > 1:
        ch = np.asarray(choice)
        total -= int(f.cut[f.cut_start + ch[:-1] * f.width + ch[1:]].sum())
    total -= p.w("reuse") * _extra_uses(f.clip[at]) + p.w("variety") * _extra_uses(f.file[at])
    return total - sum(pen for _, pen in character_mismatches(p, choice))


def _extra_uses(values: np.ndarray) -> int:
    used = values[values >= 0]
    return len(used) - len(np.unique(used))


def feasible(p: Problem, choice: list[int]) -> bool:
    """No clip comes back sooner than the rule set's reuse gap allows (0: never)."""
    f = flat(p)
    clips = f.clip[f.picked(choice)]
    used = np.flatnonzero(clips >= 0)
    c = clips[used]
    if p.rules.reuse_gap == 0:
        return len(c) == len(np.unique(c))
    order = np.lexsort((used, c))  # by clip, then by shot
    c, at = c[order], used[order]
    same = c[1:] == c[:-1]
    return not np.any(same & (at[1:] - at[:-1] < p.rules.reuse_gap))
