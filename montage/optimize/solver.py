"""The CP-SAT model of the edit: the only module that imports ortools.

One Boolean per (shot, option). Cuts do not get one literal per option pair: a cut's cost is
a sum of small class-by-class tables (``montage.costs``), so each cut routes through the
classes of its two sides -- a transportation flow between the class indicators when the
table is small, plain "both classes chosen" literals for its costly pairs otherwise. Jump
cuts need (file, scale) classes and get a literal only where both sides can show the same
file. No reuse is at-most-one per clip (or per clip and window of ``reuse_gap`` shots);
variety counts extra uses per file; character continuity picks one identity per character.

``pairs=True`` builds the naive model instead (one literal per costly option pair), kept as
the reference the benchmark compares against.

The model is written straight into CP-SAT's protocol buffer through ``cp_model_helper``:
``cp_model`` itself imports pandas (half a second) and builds expressions slowly.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from montage.optimize.problem import Problem

FLOW_MAX = 24  # route a cut through a full class flow when |classes left| x |right| <= this


@dataclass(frozen=True)
class CpResult:
    choice: list[int] | None
    value: int  # objective of ``choice`` (milli-units); 0 when none
    bound: float  # CP-SAT's proven upper bound
    optimal: bool
    status: str
    seconds: float
    variables: int


class _Proto:
    """A thin writer of CpModelProto: integer variables by index, linear rows, a max objective."""

    def __init__(self):
        from ortools.sat.python import cp_model_helper

        self.h = cp_model_helper
        self.m = cp_model_helper.CpModelProto()
        self.obj: dict[int, int] = {}
        self.hint: list[tuple[int, int]] = []
        self.offset = 0

    def var(self, lo: int = 0, hi: int = 1, hint: int | None = None) -> int:
        v = self.m.variables.add()
        v.domain.extend([lo, hi])
        index = len(self.m.variables) - 1
        if hint is not None:
            self.hint.append((index, int(hint)))
        return index

    def linear(self, terms: list[tuple[int, int]], lo: float, hi: float) -> None:
        """lo <= sum(coef * var) <= hi (an infinite side is open)."""
        c = self.m.constraints.add().linear
        c.vars.extend([v for v, _ in terms])
        c.coeffs.extend([k for _, k in terms])
        c.domain.extend([_int(lo), _int(hi)])

    def exactly_one(self, lits: list[int]) -> None:
        self.m.constraints.add().exactly_one.literals.extend(lits)

    def at_most_one(self, lits: list[int]) -> None:
        self.m.constraints.add().at_most_one.literals.extend(lits)

    def gain(self, var: int, coef: int) -> None:
        """Add ``coef * var`` to the maximised objective."""
        if coef:
            self.obj[var] = self.obj.get(var, 0) + int(coef)


def _int(x: float) -> int:
    if x == math.inf:
        return 2 ** 62
    if x == -math.inf:
        return -(2 ** 62)
    return int(x)


class _Builder:
    def __init__(self, p: Problem, hint: list[int] | None):
        self.p, self.hint = p, hint
        self.w = _Proto()

    def h(self, value) -> int | None:
        return None if self.hint is None else int(bool(value))

    def build(self, pairs: bool) -> list[list[int]]:
        p, w = self.p, self.w
        self.x = [[w.var(hint=self.h(self.hint is not None and self.hint[i] == k)) for k in range(len(o))]
                  for i, o in enumerate(p.options)]
        for i, xs in enumerate(self.x):
            w.exactly_one(xs)
            for k, u in enumerate(p.unary(i).tolist()):
                w.gain(xs[k], u)
        for i in range(p.n - 1):
            if len(p.options[i]) == 1 and len(p.options[i + 1]) == 1:
                w.offset -= int(p.cut(i)[0, 0])  # both sides fixed: a constant
            elif pairs:
                self._pairs(i)
            else:
                for key in ("bright", "hue", "camera", "scale"):
                    self._aspect(i, key)
                self._jump(i)
        self._reuse()
        self._variety()
        self._characters()
        return self.x

    def _pairs(self, i: int) -> None:
        cut = self.p.cut(i)
        for a, b in zip(*np.nonzero(cut)):
            t = self.w.var(hint=self.h(self.hint is not None and self.hint[i] == a and self.hint[i + 1] == b))
            self.w.linear([(t, 1), (self.x[i][a], -1), (self.x[i + 1][b], -1)], -1, math.inf)
            self.w.gain(t, -int(cut[a, b]))

    def _aspect(self, i: int, key: str) -> None:
        p, w = self.p, self.w
        tables = [t for term, k, t in p.aspects if k == key and p.aspect_active(term, i)]
        if not tables:
            return
        table = sum(tables)
        ca, cb = p.classes[key][i], p.classes[key][i + 1]
        left, right = sorted(set(ca.tolist())), sorted(set(cb.tolist()))
        costly = [(a, b) for a in left for b in right if table[a, b] > 0]
        if not costly:
            return
        ya = {a: [self.x[i][k] for k in np.nonzero(ca == a)[0]] for a in left}
        yb = {b: [self.x[i + 1][k] for k in np.nonzero(cb == b)[0]] for b in right}
        ha = None if self.hint is None else int(ca[self.hint[i]])
        hb = None if self.hint is None else int(cb[self.hint[i + 1]])
        if len(left) * len(right) <= FLOW_MAX:
            t = {(a, b): w.var(hint=self.h(a == ha and b == hb)) for a in left for b in right}
            for a in left:
                w.linear([(t[a, b], 1) for b in right] + [(v, -1) for v in ya[a]], 0, 0)
            for b in right:
                w.linear([(t[a, b], 1) for a in left] + [(v, -1) for v in yb[b]], 0, 0)
            for a, b in costly:
                w.gain(t[a, b], -int(table[a, b]))
        else:
            for a, b in costly:
                v = w.var(hint=self.h(a == ha and b == hb))
                w.linear([(v, 1)] + [(x, -1) for x in ya[a] + yb[b]], -1, math.inf)
                w.gain(v, -int(table[a, b]))

    def _jump(self, i: int) -> None:
        p, weight = self.p, self.p.w("jump_cut")
        if not weight:
            return
        fa, fb = p.file[i], p.file[i + 1]
        sa, sb = p.classes["scale"][i], p.classes["scale"][i + 1]
        left = {(int(f), int(s)) for f, s in zip(fa, sa) if f >= 0}
        right = {(int(f), int(s)) for f, s in zip(fb, sb) if f >= 0}
        for f, s in sorted(left & right):
            xa = [self.x[i][k] for k in np.nonzero((fa == f) & (sa == s))[0]]
            xb = [self.x[i + 1][k] for k in np.nonzero((fb == f) & (sb == s))[0]]
            h = None
            if self.hint is not None:
                ka, kb = self.hint[i], self.hint[i + 1]
                h = (fa[ka], sa[ka]) == (f, s) == (fb[kb], sb[kb])
            v = self.w.var(hint=self.h(h))
            self.w.linear([(v, 1)] + [(x, -1) for x in xa + xb], -1, math.inf)
            self.w.gain(v, -weight)

    def _uses(self, arrays: list[np.ndarray]) -> dict[int, list[tuple[int, int]]]:
        out: dict[int, list[tuple[int, int]]] = {}
        for i, arr in enumerate(arrays):
            for k, c in enumerate(arr.tolist()):
                if c >= 0:
                    out.setdefault(c, []).append((i, self.x[i][k]))
        return out

    def _reuse(self) -> None:
        p, gap = self.p, self.p.rules.reuse_gap
        for c, uses in sorted(self._uses(p.clip).items()):
            if len(uses) < 2:
                continue
            if gap == 0:
                self.w.at_most_one([v for _, v in uses])
                continue
            for s, _ in uses:
                window = [v for i, v in uses if s <= i < s + gap]
                if len(window) > 1:
                    self.w.at_most_one(window)
            if p.w("reuse"):
                self._extra(uses, p.w("reuse"), None if self.hint is None else
                            sum(int(p.clip[i][k]) == c for i, k in enumerate(self.hint)))

    def _variety(self) -> None:
        p, weight = self.p, self.p.w("variety")
        if not weight:
            return
        for f, uses in sorted(self._uses(p.file).items()):
            if len({i for i, _ in uses}) >= 2:
                self._extra(uses, weight, None if self.hint is None else
                            sum(int(p.file[i][k]) == f for i, k in enumerate(self.hint)))

    def _extra(self, uses: list[tuple[int, int]], weight: int, hinted: int | None) -> None:
        """Cost ``weight`` per use beyond the first."""
        e = self.w.var(0, len({i for i, _ in uses}) - 1, None if hinted is None else max(0, hinted - 1))
        self.w.linear([(e, 1)] + [(v, -1) for _, v in uses], -1, math.inf)
        self.w.gain(e, -weight)

    def _characters(self) -> None:
        p, weight = self.p, self.p.w("character")
        if not weight:
            return
        for _, shots in p.characters:
            ids = sorted({k for i in shots for f in p.faces[i] for k in f})
            if not ids:
                continue
            chosen = None
            if self.hint is not None:
                shown = [p.faces[i][self.hint[i]] for i in shots if p.faces[i][self.hint[i]]]
                chosen = min(ids, key=lambda k: (sum(k not in f for f in shown), k)) if shown else ids[0]
            y = {k: self.w.var(hint=self.h(k == chosen)) for k in ids}
            self.w.exactly_one(list(y.values()))
            for i in shots:
                with_face = [self.x[i][k] for k, f in enumerate(p.faces[i]) if f]
                if not with_face:
                    continue
                agree = []
                for ident in sorted({k for f in p.faces[i] for k in f}):
                    shows = [self.x[i][k] for k, f in enumerate(p.faces[i]) if ident in f]
                    shown_now = self.hint is not None and ident in p.faces[i][self.hint[i]]
                    a = self.w.var(hint=self.h(ident == chosen and shown_now))
                    self.w.linear([(a, 1), (y[ident], -1)], -math.inf, 0)
                    self.w.linear([(a, 1)] + [(v, -1) for v in shows], -math.inf, 0)
                    agree.append(a)
                h = None
                if self.hint is not None:
                    now = p.faces[i][self.hint[i]]
                    h = bool(now) and chosen not in now
                miss = self.w.var(hint=self.h(h))
                self.w.linear([(miss, 1)] + [(v, -1) for v in with_face] + [(a, 1) for a in agree],
                              0, math.inf)
                self.w.gain(miss, -weight)


def solve_cpsat(p: Problem, hint: list[int] | None = None, time_limit: float = 2.0,
                deterministic_limit: float | None = None, workers: int = 1,
                pairs: bool = False, seed: int = 0, upper: float | None = None) -> CpResult:
    """Solve ``p`` with CP-SAT from ``hint``; deterministic when ``deterministic_limit`` binds.

    ``time_limit`` is a wall-clock backstop; ``deterministic_limit`` (CP-SAT's own work
    units) decides where the search stops, so the answer does not depend on machine load.
    ``upper`` is a known upper bound (e.g. Lagrangian): the search never looks above it.
    """
    t0 = time.perf_counter()
    b = _Builder(p, hint)
    x = b.build(pairs)
    w = b.w
    obj = w.m.objective  # CP-SAT minimises: store -gain
    items = sorted(w.obj.items())
    obj.vars.extend([v for v, _ in items])
    obj.coeffs.extend([-c for _, c in items])
    if upper is not None:  # -(objective) >= -(upper - offset)
        obj.domain.extend([-int(math.floor(upper + 1e-6)) + w.offset, 2 ** 62])
    if w.hint:
        w.m.solution_hint.vars.extend([v for v, _ in w.hint])
        w.m.solution_hint.values.extend([h for _, h in w.hint])
    prm = w.h.SatParameters()
    prm.max_time_in_seconds = max(0.01, time_limit - (time.perf_counter() - t0))
    if deterministic_limit is not None:
        prm.max_deterministic_time = deterministic_limit
    prm.num_workers = workers
    if workers > 1:
        prm.interleave_search = True  # several subsolvers, one thread, deterministic
    prm.random_seed = seed
    solver = w.h.SolveWrapper()
    solver.set_parameters(prm)
    r = solver.solve(w.m)
    seconds = time.perf_counter() - t0
    status = r.status.name
    nvars = len(w.m.variables)
    if status not in ("OPTIMAL", "FEASIBLE"):
        bound = -math.inf if status == "INFEASIBLE" else math.inf
        return CpResult(None, 0, bound, False, status, seconds, nvars)
    sol = r.solution
    choice = [next(k for k, v in enumerate(xs) if sol[v]) for xs in x]
    return CpResult(choice, int(round(-r.objective_value)) + w.offset,
                    -float(r.best_objective_bound) + w.offset, status == "OPTIMAL", status, seconds, nvars)
