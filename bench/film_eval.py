"""Show or card, judged on the film: what a viewer sees for each sentence of a story.

python bench/film_eval.py [--half tuning|test|both] [--generator SPEC] [--work DIR] [--sweep]

For each half of assets/eval (split once by item, see bench/evalset.py), a story of one
sentence per item (its first hand-written query that names only that item, else its caption;
five sentences a paragraph) is cut by the real pipeline (``montage.pipeline.Recutter``: plan,
index, search, generation if asked, optimize, render at 320x180) twice:

- ``full``: every item's files in the library (every sentence's footage is there);
- ``absent-1`` .. ``absent-4``: a quarter of the items' files removed (the items shuffled once
  with ABSENT_SEED, then quartered), so their sentences have no footage: the film should show
  a card or a fill, not another file. Over the four films every sentence is absent once.

Per film it counts the present sentences shown with their own footage (``right``: the file,
or the shot for "id@T" relevance), with another file (``wrong``), a generated clip (``fill``)
or a title card (``card``); the absent sentences shown as ``card`` / ``fill`` / ``wrong``; and
the AUROC of the decision signal for "the top hit is right" over the film's sentences: the
calibrated confidence (sd above the library for the sentence) where the candidates carry a
calibration, and the raw search score beside it (the signal of the absolute threshold).

``--sweep`` (tuning half only) re-solves each film's saved plan and candidates with the card
bar moved (``placeholder_shift``, in sd), with the real optimizer, to choose the bar.

The bench reads only what every montage version writes (the project's history: plan.json,
candidates.json, edit.otio), so the same file measures an older checkout: run it from that
checkout's root (``cd /work/main && python /path/to/bench/film_eval.py --work DIR``).
Prints JSON lines, then a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the checkout being measured (see the module docstring)

import evalset  # noqa: E402

from montage.film import read_timeline  # noqa: E402
from montage.pipeline.recut import MakeOptions, Recutter  # noqa: E402
from planner.shots import ShotPlan  # noqa: E402
from retrieval import open_index  # noqa: E402
from retrieval.types import CandidateSet  # noqa: E402

MEDIA_CACHE = Path.home() / ".cache" / "montage" / "eval-media"
ABSENT_SEED = 26  # which items' files leave the library in which absent film
ABSENT_FILMS = 4  # a quarter absent in each, about as in the issue's own trial (26 of 117)
PARAGRAPH = 5  # sentences a paragraph


def story(items: list[dict], queries: list[dict]) -> list[dict]:
    """One sentence per item: its first query that names only it, else its caption."""
    out = []
    for item in items:
        own = [q for q in queries
               if all(t.partition("@")[0] == item["id"] for t in q["relevant"].split())]
        text, relevant = (own[0]["query"], own[0]["relevant"]) if own else (item["caption"],
                                                                            item["id"])
        text = text.strip().rstrip(".")
        out.append({"item": item["id"], "text": text[0].upper() + text[1:] + ".",
                    "relevant": relevant})
    return out


def absent_sets(items: list[dict]) -> list[set[str]]:
    """ABSENT_FILMS disjoint sets of item ids, together every item once."""
    ids = sorted(i["id"] for i in items)
    random.Random(ABSENT_SEED).shuffle(ids)
    return [set(ids[k::ABSENT_FILMS]) for k in range(ABSENT_FILMS)]


def write_story(path: Path, sentences: list[dict]) -> dict[int, dict]:
    """The script file; returns line number -> sentence."""
    lines, at = [], {}
    for n, s in enumerate(sentences):
        if n and n % PARAGRAPH == 0:
            lines.append("")
        lines.append(s["text"])
        at[len(lines)] = s
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return at


def cut_film(label: str, items: list[dict], sentences: list[dict], work: Path,
             generator: str) -> dict:
    """Cut the story over a library of ``items``; returns what the film shows per sentence."""
    root = work / label / "library"
    if root.exists():  # the same items as last time: indexed warm
        wanted = {i["name"] for i in items}
        for f in [p for p in root.rglob("*") if p.is_file() and ".montage" not in p.parts]:
            if f.relative_to(root).as_posix() not in wanted:
                f.unlink()
    names = evalset.fetch(items, root, MEDIA_CACHE)
    script = work / label / "story.txt"
    at = write_story(script, sentences)
    project = work / label / "project"
    shutil.rmtree(project, ignore_errors=True)
    out = work / label / "film.mp4"
    options = MakeOptions(width=320, height=180, progress=False, contact_sheet=True,
                          generator=generator)
    t = time.perf_counter()
    result = Recutter(root, project, options).cut(script, out)
    seconds = time.perf_counter() - t
    folder = project / "history" / f"{result.cut:04d}"
    plan = ShotPlan.load(folder / "plan.json")
    cands = CandidateSet.from_json((folder / "candidates.json").read_text(encoding="utf-8"))
    edl = read_timeline(folder / "edit.otio")
    shots = open_index(root).shots
    return {"label": label, "names": names, "shots": shots, "plan": plan, "candidates": cands,
            "edl": edl, "at": at, "seconds": round(seconds, 1), "folder": folder}


def relevant_shots(sentence: dict, names: dict[str, str], shots) -> set[str]:
    """The library shot ids that are right for the sentence ({} when its files are absent)."""
    kept = " ".join(t for t in sentence["relevant"].split() if t.partition("@")[0] in names)
    return evalset.relevant_ids(kept, names, shots) if kept else set()


def judge(film: dict, decisions=None) -> dict:
    """Counts per outcome, and the decision signal's AUROC (see the module docstring)."""
    plan, names, shots = film["plan"], film["names"], film["shots"]
    decisions = decisions if decisions is not None else film["edl"].decisions
    by_shot = {d.shot_id: d for d in decisions}
    cands = {c.shot_id: c for c in film["candidates"].shots}
    counts = {"present": {"right": 0, "wrong": 0, "fill": 0, "card": 0},
              "absent": {"card": 0, "fill": 0, "wrong": 0}}
    seen, signal, raw, labels, rows = set(), [], [], [], []
    for shot in plan.shots:
        sentence = film["at"].get(shot.line)
        if sentence is None or sentence["item"] in seen:  # a sentence split in two: its first shot
            continue
        seen.add(sentence["item"])
        right = relevant_shots(sentence, names, shots)
        d = by_shot[shot.id]
        if d.source == "placeholder":
            outcome = "card"
        elif d.source == "generated":
            outcome = "fill"
        else:
            outcome = "right" if d.library_shot in right else "wrong"
        counts["present" if right else "absent"][outcome] += 1
        c = cands[shot.id]
        top = c.hits[0] if c.hits else None
        labels.append(bool(top and top.shot.id in right))
        raw.append(top.score if top else float("-inf"))
        cal = getattr(c, "calibration", None)
        signal.append(cal.confidence(top.score) if (top and cal) else raw[-1])
        rows.append({"item": sentence["item"], "query": c.query, "present": bool(right),
                     "outcome": outcome, "top": top.shot.id if top else "",
                     "top_right": labels[-1], "raw": round(raw[-1], 3),
                     "confidence": round(signal[-1], 2) if cal else None})
    calibrated = any(r["confidence"] is not None for r in rows)
    return {"counts": counts, "sentences": len(seen),
            "auroc_signal": auroc(signal, labels) if calibrated else None,
            "auroc_raw": auroc(raw, labels), "rows": rows,
            "pooled": (signal if calibrated else None, raw, labels)}


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a right top hit scores above a wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 3)


def sweep(film: dict, shifts: list[float]) -> list[dict]:
    """The film's decisions re-solved with the card bar moved (no render): the real optimizer
    on the cut's own plan and candidates."""
    from dataclasses import replace

    from montage.optimize import load_rules, optimize

    rules = load_rules("default")
    out = []
    for shift in shifts:
        sol = optimize(film["plan"], film["candidates"],
                       rules=replace(rules, placeholder_shift=shift),
                       rate=film["edl"].rate, width=320, height=180)
        j = judge(film, sol.edl.decisions)
        out.append({"shift": shift, **j["counts"]["present"],
                    **{f"absent_{k}": v for k, v in j["counts"]["absent"].items()}})
    return out


def run_half(half: str, items: list[dict], queries: list[dict], work: Path, generator: str,
             do_sweep: bool) -> list[dict]:
    sentences = story(items, evalset.queries_for(items, queries))
    films = [("full", set())] + [(f"absent-{k}", gone)
                                 for k, gone in enumerate(absent_sets(items), 1)]
    rows, pooled = [], ([], [], [])
    for label, gone in films:
        lib = [i for i in items if i["id"] not in gone]
        film = cut_film(f"{half}-{label}", lib, sentences, work, generator)
        j = judge(film)
        if label != "full":
            for into, part in zip(pooled, j["pooled"]):
                into += part or []
        row = {"bench": "film", "half": half, "film": label, "sentences": j["sentences"],
               "absent_items": sorted(gone),
               "present": j["counts"]["present"], "absent": j["counts"]["absent"],
               "auroc_signal": j["auroc_signal"], "auroc_raw": j["auroc_raw"],
               "seconds": film["seconds"], "contact": str(film["folder"] / "contact.png")}
        print(json.dumps(row), flush=True)
        for r in j["rows"]:
            print(json.dumps({"half": half, "film": label, **r}), flush=True)
        if do_sweep:
            for s in sweep(film, [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]):
                print(json.dumps({"sweep": half, "film": label, **s}), flush=True)
        rows.append(row)
    absent = [r for r in rows if r["film"] != "full"]
    total = {"bench": "film", "half": half, "film": f"absent-1..{ABSENT_FILMS} together",
             "sentences": sum(r["sentences"] for r in absent),
             "present": {k: sum(r["present"][k] for r in absent) for k in absent[0]["present"]},
             "absent": {k: sum(r["absent"][k] for r in absent) for k in absent[0]["absent"]},
             "auroc_signal": auroc(pooled[0], pooled[2]) if pooled[0] else None,
             "auroc_raw": auroc(pooled[1], pooled[2])}
    print(json.dumps(total), flush=True)
    return rows + [total, every_query(half, items, queries, [label for label, _ in films], work)]


def every_query(half: str, items: list[dict], queries: list[dict], labels: list[str],
                work: Path) -> dict:
    """The decision signal on every query of the half (not one per item), each searched as a
    one-sentence script in each film's library: more pairs for the AUROC than the films."""
    from planner.plan import plan_text
    from retrieval import candidates_for_plan

    qs = evalset.queries_for(items, queries)
    plans = [plan_text(q["query"].strip().rstrip(".") + ".") for q in qs]
    signal, raw, labels_ = [], [], []
    for label in labels:
        root = work / f"{half}-{label}" / "library"
        present = {i["id"]: i["name"] for i in items if (root / i["name"]).is_file()}
        index = open_index(root)
        for q, plan in zip(qs, plans):
            c = candidates_for_plan(index, ShotPlan(plan.source, plan.shots[:1]), top=1).shots[0]
            if not c.hits:
                continue
            right = relevant_shots({"relevant": q["relevant"]}, present, index.shots)
            labels_.append(c.hits[0].shot.id in right)
            raw.append(c.hits[0].score)
            cal = getattr(c, "calibration", None)
            signal.append(cal.confidence(c.hits[0].score) if cal else None)
    calibrated = all(v is not None for v in signal)
    row = {"bench": "film", "half": half, "film": f"every query x {len(labels)} libraries",
           "pairs": len(labels_), "right_top": sum(labels_),
           "auroc_signal": auroc(signal, labels_) if calibrated else None,
           "auroc_raw": auroc(raw, labels_)}
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    head = ["half", "film", "present: right", "wrong", "fill", "card", "absent: card", "fill",
            "wrong", "AUROC signal", "AUROC raw"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "present" not in r:  # the every-query row: AUROCs only
            cells = [r["half"], f"{r['film']} ({r['pairs']} pairs)"] + ["-"] * 7 + [
                str(r["auroc_signal"] if r["auroc_signal"] is not None else "-"),
                str(r["auroc_raw"])]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        p, a = r["present"], r["absent"]
        n_p, n_a = sum(p.values()), sum(a.values())

        def share(v: int, n: int) -> str:
            return f"{v} ({100 * v / n:.0f}%)" if n else "-"

        cells = [r["half"], r["film"], share(p["right"], n_p), share(p["wrong"], n_p),
                 share(p["fill"], n_p), share(p["card"], n_p), share(a["card"], n_a),
                 share(a["fill"], n_a), share(a["wrong"], n_a),
                 str(r["auroc_signal"] if r["auroc_signal"] is not None else "-"),
                 str(r["auroc_raw"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=("tuning", "test", "both"), default="both")
    ap.add_argument("--generator", default="off", help="off (default), builtin, ...")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep libraries, indexes and films here (re-runs index warm)")
    ap.add_argument("--sweep", action="store_true",
                    help="re-solve the tuning films with the card bar moved (tuning half only)")
    args = ap.parse_args()
    if args.sweep and args.half != "tuning":
        ap.error("--sweep chooses the bar: run it on the tuning half only (--half tuning)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(json.dumps({"bench": "film", "checkout": os.getcwd(), "commit": commit,
                      "machine": platform.machine(), "cpus": os.cpu_count(),
                      "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    items = evalset.rows(evalset.EVAL / "items.csv")
    queries = evalset.rows(evalset.EVAL / "queries.csv")
    tuning, test = evalset.split(items)
    halves = {"tuning": tuning, "test": test}
    wanted = ["tuning", "test"] if args.half == "both" else [args.half]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for half in wanted:
            rows += run_half(half, halves[half], queries, work, args.generator, args.sweep)
    print(json.dumps({"load_avg_1m_end": round(os.getloadavg()[0], 2)}))
    print(table(rows))


if __name__ == "__main__":
    main()
