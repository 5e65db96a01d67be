"""Search latency at 10k, 100k and 1M shots, exact and approximate, with recall@50.

`make bench` (or python bench/search_scale.py [--sizes 10000,100000,1000000]). Uses
retrieval.vectors.VectorIndex, the class the footage index uses. Vectors are synthetic,
384-d like MiniLM's, and shaped like real embeddings rather than uniform noise (where no
approximate index can work, and no real embedder produces): 5000 clusters in a 48-d latent
space mapped into 384-d, plus isotropic noise, then normalised (so 2 shots per cluster at 10k,
200 at 1M). Queries are 200 fresh draws from the same process, not rows of the index. IVF is
also measured, for comparison, up to --ivf-max rows (on this model at 1M it reached recall@50
0.977 at nprobe 32 of 2048 in 1.9 ms, built in 81 s; at 100k it needed far more cells). Prints
one JSON object per line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retrieval.vectors import (  # noqa: E402
    EXACT_MAX, HNSW_EF_CONSTRUCTION, HNSW_M, VectorIndex, ivf_cells)

DIM = 384
LATENT = 48
K = 50
N_QUERIES = 200
LATENCY_QUERIES = 100


def synthetic(n: int, *, seed: int, world_seed: int = 7, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors from the clustered latent model described in the module docstring."""
    world = np.random.default_rng(world_seed)
    mixing = world.normal(size=(LATENT, DIM)).astype(np.float32) / np.sqrt(LATENT)
    centres = world.normal(size=(5000, LATENT)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        which = rng.integers(len(centres), size=b - a)
        z = centres[which] + 0.6 * rng.normal(size=(b - a, LATENT)).astype(np.float32)
        x = z @ mixing + 0.15 * rng.normal(size=(b - a, DIM)).astype(np.float32)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def latency_ms(index: VectorIndex, queries: np.ndarray, n: int = LATENCY_QUERIES) -> dict:
    """Single-query latency (one query per call, as a user's search makes), median and p95."""
    times = []
    for q in queries[:n]:
        t = time.perf_counter()
        index.search(q[None, :], K)
        times.append((time.perf_counter() - t) * 1000)
    return {"latency_ms_p50": round(float(np.median(times)), 3),
            "latency_ms_p95": round(float(np.percentile(times, 95)), 3)}


def recall(truth: np.ndarray, found: np.ndarray) -> float:
    """Mean share of the exact top-K that the approximate search also returned."""
    return float(np.mean([len(set(t.tolist()) & set(f[f >= 0].tolist())) / len(t)
                          for t, f in zip(truth, found)]))


def run_size(n: int, with_ivf: bool) -> None:
    t = time.perf_counter()
    data = synthetic(n, seed=1)
    queries = synthetic(N_QUERIES, seed=2)
    gen_s = time.perf_counter() - t

    t = time.perf_counter()
    exact = VectorIndex(DIM, data, kind="flat")
    build_exact = time.perf_counter() - t
    t = time.perf_counter()
    _, truth = exact.search(queries, K)
    batch_exact = time.perf_counter() - t
    print(json.dumps({"bench": "search", "n": n, "index": "exact (IndexFlatIP)",
                      "build_s": round(build_exact, 3), "recall@50": 1.0,
                      "batch_200_queries_s": round(batch_exact, 3),
                      **latency_ms(exact, queries, 30 if n > 200_000 else LATENCY_QUERIES),
                      "generate_s": round(gen_s, 2),
                      "auto_choice": "hnsw" if n > EXACT_MAX else "flat"}), flush=True)
    del exact

    t = time.perf_counter()
    index = VectorIndex(DIM, data, kind="hnsw")
    build_h = time.perf_counter() - t
    default_ef = index.ef_search
    for ef in (64, 128, default_ef, 512):
        index.ef_search = ef
        _, found = index.search(queries, K)
        print(json.dumps({"bench": "search", "n": n, "index": f"hnsw (IndexHNSWFlat M={HNSW_M})",
                          "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": ef,
                          "default": ef == default_ef, "build_s": round(build_h, 3),
                          "recall@50": round(recall(truth, found), 4),
                          **latency_ms(index, queries)}), flush=True)
    del index

    if with_ivf:
        nlist = ivf_cells(n)
        t = time.perf_counter()
        ivf = VectorIndex(DIM, data, kind="ivf", nlist=nlist)
        build_ivf = time.perf_counter() - t
        default_nprobe = ivf.nprobe
        for nprobe in sorted({max(1, nlist // 128), max(1, nlist // 64), default_nprobe,
                              max(1, nlist // 16), max(1, nlist // 8)}):
            ivf.nprobe = nprobe
            _, found = ivf.search(queries, K)
            print(json.dumps({"bench": "search", "n": n, "index": "ivf (IndexIVFFlat)",
                              "nlist": nlist, "nprobe": nprobe, "default": nprobe == default_nprobe,
                              "build_s": round(build_ivf, 3),
                              "recall@50": round(recall(truth, found), 4),
                              **latency_ms(ivf, queries)}), flush=True)
        del ivf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--ivf-max", type=int, default=100_000,
                        help="also build IVF (for comparison) up to this size")
    args = parser.parse_args(argv)
    import faiss

    print(json.dumps({"bench": "search", "machine": platform.machine(), "cpus": os.cpu_count(),
                      "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "dim": DIM, "k": K}), flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        run_size(n, with_ivf=n <= args.ivf_max)


if __name__ == "__main__":
    main()
