"""Optimizer benchmark: `python bench/optimizer.py --shots N --candidates M` (JSON lines).

Builds instances the way real retrieval does (bench/instances.py: top-M by similarity over a
library with topic structure, cut costs from clip features), runs ``montage.optimize`` and
prints ``{"shots", "candidates", "seconds", "objective", "bound", "optimal", "best_known", ...}``.
``best_known`` is the best objective any method reached on that instance in a long search
(60 s by default), cached in bench/best_known.json under the instance and its objective version
(:func:`objective_version`: after a rule or cost change the cache misses and the search runs
again; ``--no-compute-known`` then prints null). ``--refs`` adds the references: the DP
heuristic alone, the naive CP-SAT model (one literal per costly option pair) and, when small
enough, exhaustive search. ``--save FILE`` writes the instance (options, integer rule terms,
class tables) and the answer; ``--check FILE`` re-scores a saved answer with nothing but this
file's own plain-Python code. ``--short`` is what `make bench` runs; ``--demo`` counts rule
violations on the demo before (pure match assignment) and after (default rules).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.instances import make_instance  # noqa: E402
from montage.optimize.costs import SCALE  # noqa: E402
from montage.optimize.explain import explain  # noqa: E402
from montage.optimize.heuristic import exhaustive, improve  # noqa: E402
from montage.optimize.instance import build_problem  # noqa: E402
from montage.optimize.lagrange import lagrangian  # noqa: E402
from montage.optimize import load_rules, optimize  # noqa: E402
from montage.optimize.problem import Problem, score  # noqa: E402
import montage.optimize.problem as scoring  # noqa: E402
from montage.optimize.solver import solve_cpsat  # noqa: E402

CACHE = Path(__file__).resolve().parent / "best_known.json"
SCORING_CODE = Path(scoring.__file__)  # score(), evaluate(), feasible(): what an edit is worth
RATE, W, H = Fraction(25), 1280, 720


def problem_for(shots: int, cands: int, seed: int, style: str) -> tuple[Problem, object, object]:
    plan, candidates = make_instance(shots, cands, seed)
    rules = load_rules(style)
    return build_problem(plan, candidates, rules, rate=RATE, width=W, height=H), plan, candidates


def long_search(p: Problem, seconds: float, start: list[int] | None) -> tuple[int, list[int] | None, float]:
    """The best any of our methods reaches in ``seconds``: long Lagrangian, then CP-SAT LNS
    over windows of growing size (or CP-SAT on the whole film when it is small)."""
    t0 = time.perf_counter()
    st = lagrangian(p, iterations=300, hint=start, polish=6)
    best, value, bound = st.choice, st.value, st.bound
    size = sum(len(o) for o in p.options)
    if size <= 3000:
        cp = solve_cpsat(p, best, time_limit=max(1.0, seconds - (time.perf_counter() - t0)))
        if cp.choice is not None and cp.value > value:
            best, value = cp.choice, cp.value
        return value, best, min(bound, cp.bound)
    window = 10
    while time.perf_counter() - t0 < seconds and best is not None:
        improved = False
        for lo in range(0, p.n, window // 2):
            if time.perf_counter() - t0 > seconds:
                break
            fixed = {i: best[i] for i in range(p.n) if not lo <= i < lo + window}
            q = p.restrict(fixed)
            hint = [0 if i in fixed else best[i] for i in range(p.n)]
            cp = solve_cpsat(q, hint, time_limit=min(10.0, seconds), deterministic_limit=2.0)
            if cp.choice is not None:
                cand = [fixed[i] if i in fixed else cp.choice[i] for i in range(p.n)]
                cand = improve(p, cand, rounds=2)
                v = score(p, cand)
                if v > value:
                    best, value, improved = cand, v, True
        if not improved:
            window += 4
    return value, best, bound


def objective_version(p: Problem) -> str:
    """A short hash of everything that decides what an edit of ``p`` is worth.

    That is the instance as ``--save`` writes it (every option's integer rule terms, the class
    tables, files, faces, the rule set in effect after ``extends`` and the card bar: exactly
    what ``--check`` re-scores from) plus the source of the code that scores
    a choice (``montage/optimize/problem.py``). So a changed rule file, cost formula, instance
    builder, pacing, card bar or instance generator gives a new version, and a comment or
    a faster search does not (the search only finds edits; a better one raises best known).
    """
    data = {"instance": instance_data(p), "characters": p.characters}  # who must keep one face
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    h.update(SCORING_CODE.read_bytes())
    return h.hexdigest()[:16]


def known_key(instance: str, version: str) -> str:
    return f"{instance} objective={version}"


def read_known(cache: Path, instance: str, version: str) -> float | None:
    """The cached best objective for ``instance`` under ``version``; an entry written under any
    other version (other rules, other cost code) is never returned."""
    data = json.loads(cache.read_text()) if cache.is_file() else {}
    return data.get(known_key(instance, version))


def write_known(cache: Path, instance: str, version: str, value: float) -> None:
    """Store ``value``, dropping the instance's entries under other versions (stale for good)."""
    data = json.loads(cache.read_text()) if cache.is_file() else {}
    data = {k: v for k, v in data.items() if not k.startswith(f"{instance} objective=")}
    data[known_key(instance, version)] = value
    cache.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def best_known(instance: str, version: str, p: Problem, ours: int, seconds: float, compute: bool,
               cache: Path = CACHE) -> float | None:
    """The best objective known for ``p`` (at least ours), from the cache if it was found under
    this objective ``version``, else from a long search (``compute``) or None."""
    known = read_known(cache, instance, version)
    if known is not None and known >= ours / SCALE:
        return known
    if not compute:
        return None if known is None else max(known, ours / SCALE)
    value, _, _ = long_search(p, seconds, None)
    write_known(cache, instance, version, max(value, ours) / SCALE)
    return max(value, ours) / SCALE


def run(shots: int, cands: int, seed: int, style: str, refs: bool, save: Path | None,
        known_seconds: float, compute_known: bool, time_limit: float | None,
        naive_seconds: float = 20.0, repeat: int = 1) -> dict:
    plan, candidates = make_instance(shots, cands, seed)
    rules = load_rules(style)
    times = []
    for _ in range(max(1, repeat)):  # deterministic: every run gives the same answer
        t0 = time.perf_counter()
        sol = optimize(plan, candidates, rules=rules, time_limit=time_limit)
        times.append(time.perf_counter() - t0)
    seconds = min(times)
    p = build_problem(plan, candidates, rules, rate=RATE, width=W, height=H)
    version = objective_version(p)
    known = best_known(f"{shots}x{cands} seed={seed} style={style}", version, p,
                       round(sol.objective * SCALE), known_seconds, compute_known)
    out = {"shots": shots, "candidates": cands, "seed": seed, "style": style,
           "seconds": round(seconds, 3), "runs": len(times), "objective": sol.objective,
           "bound": sol.bound,
           "gap": round(sol.gap, 5), "optimal": sol.optimal, "best_known": known,
           "objective_version": version,
           "below_best_known": None if known is None else round((known - sol.objective) / abs(known), 5),
           "method": sol.method, "dp_value": sol.stats.get("dp_value"),
           "dp_reuses": sol.stats.get("dp_reuses"), "load1": round(os.getloadavg()[0], 2)}
    if refs:
        out.update(references(p, sol.objective, naive_seconds))
    if save:
        chosen = [next(k for k, o in enumerate(p.options[i]) if o.clip_id == (d.library_shot or ""))
                  for i, d in enumerate(sol.edl.decisions)]
        save_instance(p, chosen, save)
        out["saved"] = str(save)
    return out


def references(p: Problem, objective: float, seconds: float) -> dict:
    st = lagrangian(p, iterations=0, polish=0)
    out = {"dp_alone": st.dp_value / SCALE}
    t = time.perf_counter()
    naive = solve_cpsat(p, None, time_limit=seconds, pairs=True)
    out.update(naive_objective=naive.value / SCALE if naive.choice else None,
               naive_bound=naive.bound / SCALE, naive_optimal=naive.optimal,
               naive_seconds=round(time.perf_counter() - t, 3))
    size = 1
    for o in p.options:
        size *= len(o)
    if size <= 300_000:
        _, value = exhaustive(p, limit=300_000)
        out.update(exhaustive=value / SCALE, agree=abs(value / SCALE - objective) < 1e-9)
    return out


def instance_data(p: Problem) -> dict:
    """The instance as plain data: options, integer rule terms, class tables, weights, faces."""
    return {
        "scale": SCALE, "rules": p.rules.to_dict(),
        "weights": {t: p.w(t) for t in ("jump_cut", "variety", "reuse", "character")},
        "reuse_gap": p.rules.reuse_gap,
        "aspects": [{"term": t, "classes": k, "table": tab.tolist()} for t, k, tab in p.aspects],
        "scene_blind": sorted({t for t, _, _ in p.aspects if not all(
            p.aspect_active(t, i) for i in range(p.n - 1))}),
        "shots": [{"id": s.id, "opens_scene": p.opens[i], "characters": list(s.characters),
                   "options": [{"clip": o.clip_id, "file": int(p.file[i][k]),
                                "terms": {t: int(v[k]) for t, v in p.terms[i].items() if v[k]},
                                "classes": {key: int(p.classes[key][i][k]) for key in p.classes},
                                "faces": list(p.faces[i][k])}
                               for k, o in enumerate(p.options[i])]}
                  for i, s in enumerate(p.shots)],
    }


def save_instance(p: Problem, chosen: list[int], path: Path) -> None:
    data = instance_data(p)
    data["answer"] = {"options": chosen, "clips": [p.options[i][k].clip_id for i, k in enumerate(chosen)],
                      "objective": score(p, chosen)}
    Path(path).write_text(json.dumps(data))


def check_saved(path: Path) -> dict:
    """Re-score a saved answer from the JSON alone (plain Python, none of montage's code)."""
    d = json.loads(Path(path).read_text())
    shots, pick, w = d["shots"], d["answer"]["options"], d["weights"]
    opts = [s["options"][k] for s, k in zip(shots, pick)]
    total = sum(sum(o["terms"].values()) for o in opts)
    for i in range(1, len(opts)):
        a, b = opts[i - 1], opts[i]
        for asp in d["aspects"]:
            if shots[i]["opens_scene"] and asp["term"] in d["scene_blind"]:
                continue
            total -= asp["table"][a["classes"][asp["classes"]]][b["classes"][asp["classes"]]]
        if a["file"] >= 0 and a["file"] == b["file"] and a["classes"]["scale"] == b["classes"]["scale"]:
            total -= w["jump_cut"]
    clips = [o["clip"] for o in opts if o["clip"]]
    files = [o["file"] for o in opts if o["file"] >= 0]
    total -= w["reuse"] * (len(clips) - len(set(clips))) + w["variety"] * (len(files) - len(set(files)))
    feasible = True
    last: dict[str, int] = {}
    for i, o in enumerate(opts):
        if o["clip"]:
            if o["clip"] in last and (d["reuse_gap"] == 0 or i - last[o["clip"]] < d["reuse_gap"]):
                feasible = False
            last[o["clip"]] = i
    names = sorted({n for s in shots for n in s["characters"]})
    for name in names:
        rows = [i for i, s in enumerate(shots) if name in s["characters"]]
        ids = sorted({k for i in rows for o in shots[i]["options"] for k in o["faces"]})
        shown = [set(opts[i]["faces"]) for i in rows if opts[i]["faces"]]
        if shown and ids:
            total -= w["character"] * min(sum(k not in f for f in shown) for k in ids)
    return {"checked": str(path), "objective": total / d["scale"], "saved_objective":
            d["answer"]["objective"] / d["scale"], "agree": total == d["answer"]["objective"],
            "feasible": feasible}


def demo_violations() -> dict:
    """Rule bends on the demo film: the pure match assignment (before) vs the default rules."""
    from montage.cli.demo import DEMO, fetch_demo_library
    from planner.plan import load_script
    from retrieval.index.build import build_index
    from retrieval.search.footage import open_index
    from retrieval.search.candidates import candidates_for_plan

    library = fetch_demo_library()
    build_index(library, "proxy", progress=False)
    plan = load_script(DEMO / "script.txt")
    candidates = candidates_for_plan(open_index(library), plan, top=10)
    rules = load_rules("default")
    p = build_problem(plan, candidates, rules, rate=RATE, width=W, height=H)
    out = {"demo_shots": p.n, "features": sum(h.shot.features is not None
                                              for c in candidates.shots for h in c.hits)}
    for name, rs in (("before", rules.only("match").with_weights(duration=rules.weight("duration"))),
                     ("after", rules)):
        sol = optimize(plan, candidates, rules=rs)
        chosen = [next(k for k, o in enumerate(p.options[i]) if o.clip_id == (d.library_shot or ""))
                  for i, d in enumerate(sol.edl.decisions)]
        bends = [b for e in explain(p, chosen) for b in e.bends]
        out[f"{name}_violations"] = len(bends)
        out[f"{name}_by_rule"] = {b: bends.count(b) for b in sorted(set(bends))}
        out[f"{name}_objective_under_default"] = score(p, chosen) / SCALE
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, action="append")
    ap.add_argument("--candidates", type=int, action="append")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--style", default="default")
    ap.add_argument("--refs", action="store_true", help="also run the references")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--check", type=Path)
    ap.add_argument("--time-limit", type=float)
    ap.add_argument("--naive-seconds", type=float, default=20.0, help="time for the naive model")
    ap.add_argument("--repeat", type=int, default=1, help="time the best of this many runs")
    ap.add_argument("--known-seconds", type=float, default=60.0)
    ap.add_argument("--no-compute-known", action="store_true", help="only read the cache")
    ap.add_argument("--short", action="store_true", help="the `make bench` set")
    ap.add_argument("--demo", action="store_true", help="rule violations on the demo")
    a = ap.parse_args(argv)
    if a.check:
        print(json.dumps(check_saved(a.check)), flush=True)
        return
    if a.demo:
        print(json.dumps(demo_violations()), flush=True)
        return
    t = time.perf_counter()
    from ortools.sat.python import cp_model_helper  # noqa: F401  (what a first solve imports)
    print(json.dumps({"import_ortools_seconds": round(time.perf_counter() - t, 3),
                      "cpus": os.cpu_count(), "load1": round(os.getloadavg()[0], 2)}), flush=True)
    sizes = list(zip(a.shots or [], a.candidates or []))
    if a.short:
        sizes = [(20, 10), (150, 50), (300, 50)]
        a.repeat = max(a.repeat, 3)
    for n, m in sizes:
        print(json.dumps(run(n, m, a.seed, a.style, a.refs and n * m <= 1500, a.save,
                             a.known_seconds, not a.no_compute_known, a.time_limit,
                             a.naive_seconds, a.repeat)), flush=True)


if __name__ == "__main__":
    main()
