"""Choose proxy-v4's weights on the tuning half of assets/eval (never the test half).

python bench/tune_retrieval.py [--half tuning|test] [--full]

Keyframes are analysed once (as the indexer does) and their signals cached, so each setting
is scored in milliseconds: the shot vector (mean of keyframes, or the best keyframe), the
query vector, and the keyword score as the search's weighted mode adds it. Prints one JSON
line per setting (recall@1, recall@5, MRR). ``--half test`` exists only to report the chosen
setting once, after choosing.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evalset  # noqa: E402

from retrieval.search import ranking  # noqa: E402
from retrieval.analysis.analyse import Settings, analyse_file  # noqa: E402
from retrieval.media.cuts import DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD  # noqa: E402
from retrieval.embed.base import normalise  # noqa: E402
from retrieval.embed.keywords import keyword_score, label_terms, terms  # noqa: E402
from retrieval.embed.labels import merge_labels, people_hints, people_words  # noqa: E402
from retrieval.media.library import find_media, footage_text, footage_words  # noqa: E402
from retrieval.embed.proxy4 import MIX, ConceptEmbedder  # noqa: E402
from retrieval.embed.proxy3 import _top_labels, label_names  # noqa: E402
from retrieval.embed.text import encode_texts  # noqa: E402

CACHE = Path.home() / ".cache" / "montage" / "eval-signals"
CACHE_VERSION = "v6"  # raw measurements per frame (FrameSignals with facts, scene and hints);
# v6: people facts as the indexer's workers measure them, two side crops of wide frames


class Library:
    """One half's shots with cached keyframe signals."""

    def __init__(self, items: list[dict], emb: ConceptEmbedder, work: Path, tag: str) -> None:
        root = work / tag
        self.names = evalset.fetch(items, root, work / "media-cache")
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"{tag}-{CACHE_VERSION}.pkl"
        if path.is_file():
            data = pickle.loads(path.read_bytes())
        else:
            data = {"shots": [], "signals": [], "texts": []}
            settings = Settings(DEFAULT_THRESHOLD, DEFAULT_MIN_SHOT)
            for m in find_media(root):
                a = analyse_file(str(root), m.path, m.kind, settings)
                text = footage_text(root, m.path)
                for n, (rows, feats) in enumerate(zip(a.groups, a.features)):
                    frames = [a.frames[r] for r in rows]
                    hints = [people_hints(feats)] * len(frames)
                    sig = emb.signals(frames, hints, [a.facts[r] for r in rows])
                    data["shots"].append({"id": f"{m.path}#{n}", "path": m.path,
                                          "start": a.spans[n][0], "end": a.spans[n][1],
                                          "people": people_words(feats), "text": text})
                    data["signals"].append(sig)
            path.write_bytes(pickle.dumps(data))
        self.shots = data["shots"]
        self.signals = data["signals"]
        names = label_names()
        self.terms = []
        for shot, sig in zip(self.shots, self.signals):
            per_frame = [_top_labels(names, np.argsort(-s.probs)[:5], np.sort(s.probs)[::-1][:5])
                         for s in sig]
            labels = merge_labels(per_frame, shot["people"] + footage_words(shot["text"]))
            self.terms.append(set(label_terms(labels)))
        self.df: dict[str, int] = {}
        for t in self.terms:
            for w in t:
                self.df[w] = self.df.get(w, 0) + 1


class Shot:
    def __init__(self, d):
        self.__dict__.update(d)


def scores(lib: Library, queries: list[dict], emb: ConceptEmbedder, pool: str = "mean",
           keyword_weight: float = ranking.KEYWORD_WEIGHT) -> tuple[np.ndarray, list[set[str]]]:
    """(queries x shots) search scores as the weighted search computes them, and the relevant
    shot ids of each query."""
    frames = [emb.frame_vectors(emb.reweigh(sig), [s["text"]] * len(sig))
              for s, sig in zip(lib.shots, lib.signals)]
    qv = emb.embed_queries([q["query"] for q in queries])
    if pool == "mean":
        shot_vecs = normalise(np.stack([f.mean(axis=0) for f in frames]))
        cos = qv @ shot_vecs.T
    else:
        cos = np.stack([(f @ qv.T).max(axis=0) for f in frames], axis=1)
    ranked, relevant = [], []
    shots = [Shot(s) for s in lib.shots]
    for i, q in enumerate(queries):
        qt = terms(q["query"])
        kw = np.array([keyword_score(qt, t & set(qt), lib.df, len(shots)) for t in lib.terms])
        ranked.append(cos[i] + keyword_weight * kw)
        relevant.append(evalset.relevant_ids(q["relevant"], lib.names, shots))
    return np.stack(ranked), relevant


def evaluate(lib: Library, queries: list[dict], emb: ConceptEmbedder, pool: str = "mean",
             keyword_weight: float = ranking.KEYWORD_WEIGHT) -> dict:
    score, relevant = scores(lib, queries, emb, pool, keyword_weight)
    ids = [s["id"] for s in lib.shots]
    ranked = [[ids[j] for j in np.argsort(-row, kind="stable")] for row in score]
    m = evalset.metrics(ranked, relevant)
    m["kinds"] = evalset.by_kind(ranked, relevant, [q["kind"] for q in queries])
    return m


def baseline(lib: Library, queries: list[dict], emb: ConceptEmbedder) -> dict:
    """ImageNet soft labels (all 1000) embedded with MiniLM, best of the keyframes."""
    labels = emb.label_vectors()
    qv = encode_texts([q["query"] for q in queries])
    cos = np.stack([(normalise(np.stack([s.probs for s in sig]) @ labels) @ qv.T).max(axis=0)
                    for sig in lib.signals], axis=1)
    shots = [Shot(s) for s in lib.shots]
    ranked = [[shots[j].id for j in np.argsort(-cos[i], kind="stable")] for i in range(len(queries))]
    relevant = [evalset.relevant_ids(q["relevant"], lib.names, shots) for q in queries]
    return evalset.metrics(ranked, relevant)


SEARCH = {"beta": (0.1, 0.2, 0.35, 0.5, 0.8), "gamma": (0.0, 0.1, 0.2, 0.4, 0.6),
          "gamma_scene": (0.0, 0.1, 0.2, 0.4, 0.6, 0.8),
          "temperature": (1.0, 2.0, 3.0, 5.0), "top_k": (10, 30, 100),
          "phrase_weight": (0.0, 0.15, 0.4), "kw": (0.1, 0.2, 0.3, 0.45),
          "mask_weight": (0.0, 0.3, 0.5)}


def coordinate_search(lib: Library, queries: list[dict], emb: ConceptEmbedder,
                      rounds: int = 2) -> dict:
    """Each knob in turn set to its best value of SEARCH (MRR, then recall@1 and @5 break
    ties; the current value wins a tie, so a knob moves only for a real gain)."""
    current = {k: (ranking.KEYWORD_WEIGHT if k == "kw" else getattr(MIX, k)) for k in SEARCH}

    def score(setting: dict) -> tuple:
        changes = {k: v for k, v in setting.items() if k != "kw"}
        e = ConceptEmbedder(mix=replace(MIX, **changes))
        e._labels = emb._labels
        m = evaluate(lib, queries, e, "mean", setting["kw"])
        return (m["mrr"], m["r@1"], m["r@5"])

    best = score(current)
    for _ in range(rounds):
        moved = False
        for knob, values in SEARCH.items():
            for v in values:
                trial = {**current, knob: v}
                s = score(trial)
                if s > best:
                    best, current, moved = s, trial, True
                    print(json.dumps({"knob": knob, "value": v, "mrr": s[0], "r@1": s[1],
                                      "r@5": s[2]}), flush=True)
        if not moved:
            break
    return {**current, "mrr": best[0], "r@1": best[1], "r@5": best[2]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=("tuning", "test"), default="tuning")
    ap.add_argument("--full", action="store_true", help="the whole grid, not one line")
    ap.add_argument("--search", action="store_true",
                    help="a coordinate search of the Mix and keyword weight (tuning half only)")
    ap.add_argument("--set", action="append", help="a setting to score: name=value,...")
    args = ap.parse_args()
    if args.half == "test" and (args.search or args.set or args.full):
        ap.error("the test half only reports the chosen setting: search and try settings on "
                 "the tuning half")
    items = evalset.rows(evalset.EVAL / "items.csv")
    queries = evalset.rows(evalset.EVAL / "queries.csv")
    tuning, test = evalset.split(items)
    half = tuning if args.half == "tuning" else test
    emb = ConceptEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(half, emb, Path(tmp), args.half)
        qs = evalset.queries_for(half, queries)
        print(json.dumps({"half": args.half, "queries": len(qs), "shots": len(lib.shots),
                          "baseline": baseline(lib, qs, emb)}), flush=True)
        grid = [("default", {}, "mean", ranking.KEYWORD_WEIGHT)]
        if args.full:
            grid += [(f"pool={p}", {}, p, ranking.KEYWORD_WEIGHT) for p in ("max",)]
            grid += [(f"kw={w}", {}, "mean", w) for w in (0.0, 0.15, 0.45)]
            grid += [(f"beta={b}", {"beta": b}, "mean", ranking.KEYWORD_WEIGHT)
                     for b in (0.0, 0.2, 0.5, 0.8)]
            grid += [(f"gamma={g}", {"gamma": g}, "mean", ranking.KEYWORD_WEIGHT)
                     for g in (0.0, 0.1, 0.4, 0.6)]
            grid += [(f"T={t}", {"temperature": t}, "mean", ranking.KEYWORD_WEIGHT)
                     for t in (0.5, 2.0, 3.0)]
            grid += [(f"top_k={k}", {"top_k": k}, "mean", ranking.KEYWORD_WEIGHT)
                     for k in (5, 30, 1000)]
            grid += [(f"phrase={w}", {"phrase_weight": w}, "mean", ranking.KEYWORD_WEIGHT)
                     for w in (0.0, 0.6)]
        if args.search:
            best = coordinate_search(lib, qs, emb)
            print(json.dumps({"chosen": best}), flush=True)
        for extra in args.set or ():
            changes = {k: float(v) for k, v in (kv.split("=") for kv in extra.split(","))}
            grid.append((extra, changes, "mean", changes.pop("kw", ranking.KEYWORD_WEIGHT)))
        for label, changes, pool, kw in grid:
            e = ConceptEmbedder(mix=replace(MIX, **changes))
            e._labels = emb._labels
            m = evaluate(lib, qs, e, pool, kw)
            print(json.dumps({"setting": label, **m}), flush=True)


if __name__ == "__main__":
    main()
