"""Lagrangian relaxation of no-reuse and variety: an upper bound and good starts, by DP.

Prices on clips (``lam``) and files (``mu``) are subtracted from each option's value and the
chain is solved exactly by :func:`montage.heuristic.viterbi`; the DP value plus the summed
prices bounds every feasible edit from above (clip prices >= 0 for "at most once"; file
prices in [0, variety weight], since variety costs at least ``mu * (uses - 1)``). Character
continuity is split: each shot that names a character picks its own face, at a price
``nu`` per (shot, face), and the film picks one face per character against the same prices;
any prices keep the bound valid and the steps make the picks agree. With a reuse gap the gap
itself is left out (a relaxation) and each reuse is priced by its own weight. Subgradient
steps move all prices; every DP answer, repaired, is a feasible start. Deterministic: a
fixed number of iterations, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from montage.optimize.heuristic import character_prices, eject, improve, repair, reuses, viterbi
from montage.optimize.problem import Problem, feasible, score


class _Faces:
    """The character part of the relaxation: per character, shots x faces prices ``nu``."""

    def __init__(self, p: Problem):
        w = float(p.w("character"))
        self.parts = [(rows, [-w * t for t in tables], np.zeros((len(rows), tables[0].shape[1])))
                      for rows, tables in (p.face_tables() if w else ())]

    def adjust(self, adjust: list[np.ndarray]) -> float:
        """Add each shot's best priced face to ``adjust``; return the film-side constant."""
        const = 0.0
        for rows, pen, nu in self.parts:
            for r, i in enumerate(rows):
                adjust[i] = adjust[i] + (pen[r] + nu[r][None, :]).max(axis=1)
            const += float((-nu.sum(axis=0)).max())
        return const

    def step(self, path: list[int]) -> list[np.ndarray]:
        """Subgradients of the bound in ``nu`` at the DP answer ``path`` (one per character)."""
        grads = []
        for rows, pen, nu in self.parts:
            g = np.zeros_like(nu)
            for r, i in enumerate(rows):
                g[r, int((pen[r][path[i]] + nu[r]).argmax())] += 1.0
            g[:, int((-nu.sum(axis=0)).argmax())] -= 1.0
            grads.append(g)
        return grads


@dataclass(frozen=True)
class Start:
    """The best edit found without CP-SAT, the bound, and the plain DP for comparison."""

    choice: list[int] | None  # None when no feasible edit was found
    value: int
    bound: float  # no edit scores more than this
    dp_choice: list[int] | None  # the plain DP answer, repaired (the "DP alone" reference)
    dp_value: int
    dp_reuses: int  # clip reuses the plain DP answer needed repairing
    viable: list[np.ndarray] | None = None  # per shot: options that may still beat ``value``


def through(p: Problem, adjust: list[np.ndarray]) -> list[np.ndarray]:
    """Per shot and option: the best chain value of any edit that takes that option."""
    u = [p.unary(i) + a for i, a in enumerate(adjust)]
    fwd = [u[0]]
    for i in range(p.n - 1):
        fwd.append((fwd[-1][:, None] - p.cut(i)).max(axis=0) + u[i + 1])
    bwd = [u[-1]]
    for i in range(p.n - 2, -1, -1):
        bwd.append((bwd[-1][None, :] - p.cut(i)).max(axis=1) + u[i])
    bwd.reverse()
    return [f + b - x for f, b, x in zip(fwd, bwd, u)]


def _keep(p: Problem, cand: list[int] | None, best: tuple[list[int] | None, float]):
    if cand is None:
        return best
    if not feasible(p, cand):
        cand = repair(p, cand, character_prices(p, best[0] if best[0] is not None else cand))
        if cand is None:
            return best
    v = score(p, cand)
    return (cand, v) if v > best[1] else best


def lagrangian(p: Problem, iterations: int = 40, hint: list[int] | None = None,
               polish: int = 3, patience: int = 30) -> Start:
    n_clips, n_files = len(p.clip_names), len(p.file_names)
    cap_clip = np.inf if p.rules.reuse_gap == 0 else float(p.w("reuse"))
    cap_file = float(p.w("variety"))
    lam, mu = np.zeros(n_clips + 1), np.zeros(n_files + 1)  # last slot: the placeholder (-1)
    plain, plain_value = viterbi(p)
    dp_fixed = repair(p, plain)
    best: tuple[list[int] | None, float] = (None, -np.inf)
    best = _keep(p, dp_fixed, best)
    best = _keep(p, hint, best)
    if best[0] is not None:
        best = (improve(p, best[0], rounds=1), 0)
        best = (best[0], score(p, best[0]))
    bound, theta, stall = plain_value, 1.0, 0
    prices = ([np.zeros(len(o)) for o in p.options], 0.0)
    best_lm = (lam, mu)
    clip_of = [np.where(c < 0, n_clips, c) for c in p.clip]
    file_of = [np.where(f < 0, n_files, f) for f in p.file]
    faces = _Faces(p)
    last_gain = 0  # the last iteration that moved the bound (by a unit) or the best edit
    for it in range(iterations):
        if best[0] is not None and bound - best[1] < 1.0:
            break  # proven optimal: scores are integers
        if it - last_gain > patience:
            break  # neither side moves any more
        adjust = [-(lam[c] + mu[f]) for c, f in zip(clip_of, file_of)]
        const = faces.adjust(adjust)
        path, value = viterbi(p, adjust)
        b = value + lam[:n_clips].sum() + mu[:n_files].sum() + const
        if b < bound - 1e-9:
            if b < bound - 1.0:
                last_gain = it
            bound, stall = b, 0
            prices, best_lm = (adjust, b - value), (lam, mu)
        else:
            stall += 1
            if stall >= 4:
                theta, stall = theta / 2, 0
        before = best[1]
        if best[0] is None or it % 2 == 0:
            best = _keep(p, path, best)
        else:  # a start that also prices the film's faces
            chars = character_prices(p, best[0])
            guided, _ = viterbi(p, [a + c for a, c in zip(adjust, chars)])
            best = _keep(p, guided, best)
        if best[1] > before:
            last_gain = it
        uc = np.bincount([int(clip_of[i][k]) for i, k in enumerate(path)], minlength=n_clips + 1)
        uf = np.bincount([int(file_of[i][k]) for i, k in enumerate(path)], minlength=n_files + 1)
        gc, gf = uc - 1.0, uf - 1.0
        gc[n_clips] = gf[n_files] = 0.0  # the placeholder is never priced
        gc[((lam <= 0) & (gc < 0)) | ((lam >= cap_clip) & (gc > 0))] = 0.0
        gf[((mu <= 0) & (gf < 0)) | ((mu >= cap_file) & (gf > 0))] = 0.0
        gn = faces.step(path)
        norm = float(gc @ gc + gf @ gf) + sum(float((g * g).sum()) for g in gn)
        if norm == 0:
            break  # the path is feasible for the relaxation's prices: nothing to move
        target = best[1] if best[0] is not None else b * 0.9
        t = theta * max(b - target, 1.0) / norm
        lam = np.clip(lam + t * gc, 0.0, cap_clip)
        mu = np.clip(mu + t * gf, 0.0, cap_file)
        for (_, _, nu), g in zip(faces.parts, gn):
            nu -= t * g
    if best[0] is not None and polish:  # starts from the best prices, pushed a little harder
        chars = character_prices(p, best[0])
        for push in (1.0, 1.2, 1.5):
            lam_b, mu_b = best_lm
            adjust = [ch - (push * lam_b[c] + mu_b[f]) for c, f, ch in zip(clip_of, file_of, chars)]
            best = _keep(p, viterbi(p, adjust)[0], best)
    choice, value = best
    if choice is not None and polish:
        choice = eject(p, improve(p, choice, rounds=polish))
        choice = improve(p, choice, rounds=1)
        value = score(p, choice)
    viable = None
    if choice is not None:  # options whose best priced edit cannot beat the answer are out
        adjust, const = prices
        viable = [(t + const >= value + 1 - 1e-6) for t in through(p, adjust)]
        for i, k in enumerate(choice):
            viable[i][k] = True
    return Start(choice=choice, value=int(value) if choice is not None else 0, bound=float(bound),
                 dp_choice=dp_fixed, dp_value=score(p, dp_fixed) if dp_fixed else 0,
                 dp_reuses=reuses(p, plain), viable=viable)
