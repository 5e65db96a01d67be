"""Retrieval quality on footage montage was never tuned on: baseline, proxy-v3 and proxy-v4.

python bench/retrieval.py (part of `make bench`; speed and moments: bench/retrieval_speed.py).

Libraries: the tuning half and the test half of assets/eval (split once by item, see
bench/evalset.py; each half indexed as its own library, neutral file names, no tags) and the
old 26-item set (assets/eval/old). On each, side by side:

- baseline: ImageNet soft labels (all 1000 names, probability-weighted) embedded with MiniLM,
  the best of the shot's keyframes (the simplest honest retriever from the same weights);
- proxy-v3: the previous default embedder, through the real index and search;
- proxy-v4: the new default, through the real index and search.

Prints JSON lines (recall@1, recall@5, MRR, recall@1 per query kind), then a Markdown table.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evalset  # noqa: E402

from retrieval import build_index, open_index  # noqa: E402
from retrieval.analysis.analyse import Settings, analyse_file  # noqa: E402
from retrieval.media.cuts import DEFAULT_MIN_SHOT, DEFAULT_THRESHOLD  # noqa: E402
from retrieval.embed.base import normalise  # noqa: E402
from retrieval.media.library import find_media  # noqa: E402
from retrieval.embed.text import encode_texts  # noqa: E402

MEDIA_CACHE = Path.home() / ".cache" / "montage" / "eval-media"


def baseline(root: Path, shots, queries: list[str]) -> list[list[str]]:
    """Shot ids ranked per query by the soft-label baseline (best keyframe)."""
    from retrieval.embed.proxy3 import ProxyEmbedder

    emb = ProxyEmbedder()
    labels = emb.label_vectors()
    settings = Settings(DEFAULT_THRESHOLD, DEFAULT_MIN_SHOT)
    per_shot: dict[str, np.ndarray] = {}
    for m in find_media(root):
        a = analyse_file(str(root), m.path, m.kind, settings)
        for n, rows in enumerate(a.groups):
            probs = emb.classify([a.frames[r] for r in rows])
            per_shot[f"{m.path}#{n}"] = normalise(probs @ labels)
    qv = encode_texts(queries)
    ids = [s.id for s in shots]
    scores = np.stack([(per_shot[i] @ qv.T).max(axis=0) for i in ids], axis=1)
    return [[ids[j] for j in np.argsort(-scores[q], kind="stable")] for q in range(len(queries))]


def run_library(label: str, items: list[dict], queries: list[dict], work: Path) -> list[dict]:
    root = work / label.replace(" ", "-")
    names = evalset.fetch(items, root, MEDIA_CACHE)
    texts = [q["query"] for q in queries]
    kinds = [q.get("kind") or "-" for q in queries]
    rows = []
    for embedder in ("proxy-v3", "proxy"):
        t = time.perf_counter()
        report = build_index(root, embedder, progress=False)
        seconds = time.perf_counter() - t
        index = open_index(root)
        shots = index.shots
        relevant = [evalset.relevant_ids(q["relevant"], names, shots) for q in queries]
        if embedder == "proxy-v3":
            ranked = baseline(root, shots, texts)
            rows.append(_row(label, "baseline (soft labels, best keyframe)", ranked, relevant,
                             kinds, len(shots)))
        ranked = [[h.shot.id for h in hits] for hits in index.search(texts, top=len(shots))]
        row = _row(label, report.embedder, ranked, relevant, kinds, len(shots))
        row["index_s"] = round(seconds, 1)
        rows.append(row)
    return rows


def _row(library, method, ranked, relevant, kinds, shots) -> dict:
    row = {"bench": "retrieval quality", "library": library, "method": method, "shots": shots,
           **evalset.metrics(ranked, relevant), "r@1 by kind": evalset.by_kind(ranked, relevant, kinds)}
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    kinds = sorted({k for r in rows for k in r["r@1 by kind"] if k != "-"})
    head = ["library", "method", "queries", "R@1", "R@5", "MRR"] + [f"R@1 {k}" for k in kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["library"], r["method"], str(r["n"]), f"{r['r@1']:.3f}", f"{r['r@5']:.3f}",
                 f"{r['mrr']:.3f}"] + [
            f"{r['r@1 by kind'][k]:.2f}" if k in r["r@1 by kind"] else "" for k in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    print(json.dumps({"bench": "retrieval", "machine": platform.machine(), "cpus": os.cpu_count(),
                      "python": platform.python_version(),
                      "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    items = evalset.rows(evalset.EVAL / "items.csv")
    queries = evalset.rows(evalset.EVAL / "queries.csv")
    tuning, test = evalset.split(items)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows += run_library("tuning half", tuning, evalset.queries_for(tuning, queries), work)
        rows += run_library("test half", test, evalset.queries_for(test, queries), work)
        old_items = evalset.rows(evalset.OLD / "items.csv")
        rows += run_library("old set", old_items, evalset.rows(evalset.OLD / "queries.csv"), work)
    print(table(rows))


if __name__ == "__main__":
    main()
