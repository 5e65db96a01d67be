"""Fast answers without CP-SAT: dynamic programming over the chain of shots, repair and LNS.

* :func:`viterbi` solves the chain exactly (per-shot and per-cut terms) but ignores the
  no-reuse rule and the film-wide terms: its answer may use a clip twice.
* :func:`repair` makes an answer feasible: the use of a clip that loses least by moving
  takes its best free option.
* :func:`improve` is large-neighbourhood search over windows of shots, each re-solved by DP
  with everything outside the window fixed (their clips banned, their files and the film's
  character faces priced in), keeping only what scores better overall.
* :func:`eject` moves a better clip from the shot holding it to another shot, which then
  takes its best free option (augmenting paths of length two, as in assignment problems).
* :func:`exhaustive` tries every combination: the reference for small instances.

All deterministic (ties go to the lowest option index).
"""
from __future__ import annotations

import itertools

import numpy as np

from montage.optimize.problem import Problem, feasible, score

NEG = -1e12  # "forbidden" in a DP table


def viterbi(p: Problem, adjust: list[np.ndarray] | None = None, lo: int = 0, hi: int | None = None,
            left: int | None = None, right: int | None = None) -> tuple[list[int], float]:
    """Best option per shot for shots ``lo..hi-1`` over per-shot + per-cut terms only.

    ``adjust[i]`` adds to shot ``i``'s per-shot values (prices, bans); ``left``/``right`` are
    the fixed options of the shots just outside the window (their cuts count).
    """
    hi = p.n if hi is None else hi

    def unary(i: int) -> np.ndarray:
        u = p.unary(i)
        return u + adjust[i] if adjust is not None and len(adjust[i]) else u.astype(np.float64)

    v = unary(lo)
    if left is not None:
        v = v - p.cut(lo - 1)[left, :]
    back = []
    for i in range(lo, hi - 1):
        m = v[:, None] - p.cut(i)
        arg = m.argmax(axis=0)
        v = m[arg, np.arange(m.shape[1])] + unary(i + 1)
        back.append(arg)
    if right is not None:
        v = v - p.cut(hi - 1)[:, right]
    k = int(v.argmax())
    value = float(v[k])
    path = [k]
    for arg in reversed(back):
        k = int(arg[k])
        path.append(k)
    return path[::-1], value


def reuses(p: Problem, choice: list[int]) -> int:
    """How many uses break the reuse rule (0 for a feasible edit)."""
    gap = p.rules.reuse_gap
    last: dict[int, int] = {}
    bad = 0
    for i, k in enumerate(choice):
        c = int(p.clip[i][k])
        if c >= 0:
            bad += c in last and (gap == 0 or i - last[c] < gap)
            last[c] = i
    return bad


class Usage:
    """Which shots use which clip, to ask fast whether a shot may take a clip."""

    def __init__(self, p: Problem, choice: list[int]):
        self.p, self.gap = p, p.rules.reuse_gap
        self.count = np.zeros(len(p.clip_names) + 1, dtype=np.int64)  # last slot: placeholder
        self.at: dict[int, list[int]] = {}
        for i, k in enumerate(choice):
            self.add(i, int(p.clip[i][k]))

    def add(self, i: int, c: int) -> None:
        if c >= 0:
            self.count[c] += 1
            self.at.setdefault(c, []).append(i)

    def remove(self, i: int, c: int) -> None:
        if c >= 0:
            self.count[c] -= 1
            self.at[c].remove(i)

    def conflicted(self, c: int) -> list[int] | None:
        """The shots using clip ``c`` if some of them break the reuse rule."""
        if c < 0 or self.count[c] < 2:
            return None
        ws = sorted(self.at[c])
        if self.gap == 0 or any(b - a < self.gap for a, b in zip(ws, ws[1:])):
            return ws
        return None

    def allowed(self, i: int, mine: int, skip: range | None = None) -> np.ndarray:
        """Mask over shot ``i``'s options: clips no other shot (outside ``skip``) uses too close.

        ``mine`` is the option shot ``i`` holds now (its own use does not block).
        """
        clips = self.p.clip[i]
        if self.gap == 0 and skip is None:
            used = self.count[clips] - (clips == clips[mine])
            return (clips < 0) | (used == 0)
        ok = np.ones(len(clips), dtype=bool)
        for k, c in enumerate(clips.tolist()):
            for j in self.at.get(c, ()) if c >= 0 else ():
                if j != i and (skip is None or j not in skip) and (self.gap == 0 or abs(i - j) < self.gap):
                    ok[k] = False
                    break
        return ok


def _local(p: Problem, choice: list[int], i: int) -> np.ndarray:
    """Per-shot value of each option of shot ``i`` with its neighbours' cuts, neighbours fixed."""
    v = p.unary(i).astype(np.float64)
    if i > 0:
        v = v - p.cut(i - 1)[choice[i - 1], :]
    if i < p.n - 1:
        v = v - p.cut(i)[:, choice[i + 1]]
    return v


def repair(p: Problem, choice: list[int], extra: list[np.ndarray] | None = None) -> list[int] | None:
    """Resolve reuse conflicts: the use that loses least by moving takes its best free option.

    ``extra`` adds to the local values (e.g. character prices). None if some shot has no
    free option left (title cards forbidden and too few clips).
    """
    choice = list(choice)
    usage = Usage(p, choice)
    pending = sorted(c for c in usage.at if usage.conflicted(c))
    for _ in range(4 * p.n + 4):
        if not pending:
            return choice
        conflict = usage.conflicted(pending[0])
        if conflict is None:
            pending.pop(0)
            continue
        best = None
        for i in conflict:
            local = _local(p, choice, i)
            if extra is not None and len(extra[i]):
                local = local + extra[i]
            ok = usage.allowed(i, choice[i])
            ok[choice[i]] = False
            if not ok.any():
                continue
            k = int(np.where(ok, local, -np.inf).argmax())
            loss = local[choice[i]] - local[k]
            if best is None or loss < best[0]:
                best = (loss, i, k)
        if best is None:
            return None
        _, i, k = best
        usage.remove(i, int(p.clip[i][choice[i]]))
        choice[i] = k
        c = int(p.clip[i][k])
        usage.add(i, c)
        if usage.conflicted(c) and c not in pending:
            pending.append(c)
    return None


def character_prices(p: Problem, choice: list[int]) -> list[np.ndarray]:
    """Per option: minus the character weight where it shows someone else than the film's face.

    The film's face for each character is the one the current edit shows best (as
    :func:`montage.problem.character_mismatches` decides).
    """
    out = [np.zeros(len(o)) for o in p.options]
    w = p.w("character")
    for rows, tables in p.face_tables() if w else ():
        shown = [r for r, i in enumerate(rows) if p.faces[i][choice[i]]]
        if not shown:
            continue
        best = int(sum(tables[r][choice[rows[r]]].astype(int) for r in shown).argmin())
        for r, i in enumerate(rows):
            out[i] = out[i] - w * tables[r][:, best]
    return out


def _file_counts(p: Problem, choice: list[int]) -> np.ndarray:
    """Uses per source file; the last slot counts title cards."""
    nf = len(p.file_names)
    files = [int(p.file[j][k]) for j, k in enumerate(choice)]
    return np.bincount([nf if f < 0 else f for f in files], minlength=nf + 1)


def improve(p: Problem, choice: list[int], window: int = 8, rounds: int = 3) -> list[int]:
    """Window LNS: re-solve each window of shots by DP (others fixed), keep what scores better."""
    best, best_value = list(choice), score(p, choice)
    if p.n <= 1:
        return best
    step = max(1, window // 2)
    wv = float(p.w("variety"))
    for _ in range(rounds):
        changed = False
        chars = character_prices(p, best)
        usage = Usage(p, best)
        files_all = _file_counts(p, best)
        for lo in range(0, p.n, step):
            hi = min(p.n, lo + window)
            span = range(lo, hi)
            if all(len(p.options[i]) == 1 for i in span):
                continue  # nothing to choose here (pinned or kept shots)
            files_out = files_all.copy()
            count_out = usage.count.copy()
            for i in span:
                c, f = int(p.clip[i][best[i]]), int(p.file[i][best[i]])
                if c >= 0:
                    count_out[c] -= 1
                files_out[f] -= 1
            files_out[-1] = 0  # the placeholder's slot
            adjust = [np.zeros(0)] * p.n
            for i in span:
                a = chars[i] - wv * (files_out[p.file[i]] > 0)
                if usage.gap == 0:
                    ok = (p.clip[i] < 0) | (count_out[p.clip[i]] == 0)
                else:
                    ok = usage.allowed(i, best[i], skip=span)
                adjust[i] = np.where(ok, a, NEG)
            path, _ = viterbi(p, adjust, lo, hi, best[lo - 1] if lo > 0 else None,
                              best[hi] if hi < p.n else None)
            trial = best[:lo] + path + best[hi:]
            if not feasible(p, trial):
                trial = repair(p, trial, chars)
                if trial is None:
                    continue
            value = score(p, trial)
            if value > best_value:
                best, best_value, changed = trial, value, True
                usage = Usage(p, best)
                files_all = _file_counts(p, best)
        if not changed:
            break
    return best


def eject(p: Problem, choice: list[int], rounds: int = 2) -> list[int]:
    """Ejection moves: a shot takes a better clip that another shot holds, and that shot
    moves to its best free option (an augmenting path of length two in the assignment)."""
    best, value = list(choice), score(p, choice)
    gap, wv = p.rules.reuse_gap, float(p.w("variety"))
    for _ in range(rounds):
        improved = False
        usage, chars, files = Usage(p, best), character_prices(p, best), _file_counts(p, best)
        for i in range(p.n):
            if len(p.options[i]) == 1:
                continue
            own = files.copy()
            own[p.file[i][best[i]]] -= 1
            own[-1] = 0
            li = _local(p, best, i) + chars[i] - wv * (own[p.file[i]] > 0)
            for k in np.argsort(-li, kind="stable")[:8].tolist():
                if li[k] <= li[best[i]]:
                    break
                c = int(p.clip[i][k])
                holders = [j for j in usage.at.get(c, ()) if j != i and (gap == 0 or abs(i - j) < gap)]
                if c < 0 or len(holders) != 1 or len(p.options[holders[0]]) == 1:
                    continue
                j = holders[0]
                trial = list(best)
                trial[i] = k
                lj = _local(p, trial, j) + chars[j]
                ok = usage.allowed(j, best[j])
                ok &= p.clip[j] != c
                old = int(p.clip[i][best[i]])
                if old >= 0:  # the clip shot i gives up is free for j now
                    ok |= (p.clip[j] == old) & (usage.count[old] == 1)
                ok[best[j]] = False
                if not ok.any():
                    continue
                trial[j] = int(np.where(ok, lj, -np.inf).argmax())
                if not feasible(p, trial):
                    continue
                v = score(p, trial)
                if v > value:
                    best, value, improved = trial, v, True
                    usage, chars, files = Usage(p, best), character_prices(p, best), _file_counts(p, best)
                    break
        if not improved:
            break
    return best


def exhaustive(p: Problem, limit: int = 2_000_000) -> tuple[list[int] | None, int]:
    """Every combination (refuses more than ``limit``): the best feasible edit and its value."""
    size = 1
    for opts in p.options:
        size *= len(opts)
    if size > limit:
        raise ValueError(f"{size} combinations is too many for exhaustive search (limit {limit})")
    best, best_value = None, None
    for combo in itertools.product(*(range(len(o)) for o in p.options)):
        choice = list(combo)
        if not feasible(p, choice):
            continue
        v = score(p, choice)
        if best_value is None or v > best_value:
            best, best_value = choice, v
    return best, (best_value if best_value is not None else 0)
