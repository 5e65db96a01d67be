"""Search latency at 10k, 100k and 1M shots, exact and approximate, with recall@50.

`make bench` (or python bench/search_scale.py [--sizes 10000,100000,1000000]); sizes above
--exact-max (1M) run the large-library index only (`--sizes 10000000`: see run_large). Uses
retrieval.index.vectors.VectorIndex, the class the footage index uses. Vectors are synthetic,
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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retrieval.index.vectors import EXACT_MAX, HNSW_EF_CONSTRUCTION, HNSW_M, VectorIndex, ivf_cells

DIM = 384
LATENT = 48
K = 50
N_QUERIES = 200
LATENCY_QUERIES = 100


def synthetic_chunks(n: int, *, seed: int, world_seed: int = 7, chunk: int = 100_000):
    """The rows of :func:`synthetic` ``chunk`` at a time (10M x 384 float32 would be 15 GB)."""
    world = np.random.default_rng(world_seed)
    mixing = world.normal(size=(LATENT, DIM)).astype(np.float32) / np.sqrt(LATENT)
    centres = world.normal(size=(5000, LATENT)).astype(np.float32)
    rng = np.random.default_rng(seed)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        which = rng.integers(len(centres), size=b - a)
        z = centres[which] + 0.6 * rng.standard_normal((b - a, LATENT), np.float32)
        x = z @ mixing + 0.15 * rng.standard_normal((b - a, DIM), np.float32)
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, *, seed: int, world_seed: int = 7, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors from the clustered latent model described in the module docstring."""
    out = np.empty((n, DIM), np.float32)
    a = 0
    for x in synthetic_chunks(n, seed=seed, world_seed=world_seed, chunk=chunk):
        out[a : a + len(x)] = x
        a += len(x)
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


def _rss_mb() -> tuple[float, float]:
    """(resident now, peak) in MB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return (round(int(fields["VmRSS"].split()[0]) / 1024, 1),
            round(int(fields["VmHWM"].split()[0]) / 1024, 1))


def run_large(n: int, commit_rows: int = 100_000) -> None:
    """The large-library index (retrieval.index.largevectors) at ``n`` rows, built as a library
    grows: trained once on a sample, then one append per ``commit_rows`` (a commit), while the
    exact top-K of the queries is kept chunk by chunk (no full copy of the vectors is held).
    Prints a progress line every million rows (rate, memory), then one line per setting."""
    import tempfile

    from retrieval.index.largevectors import TRAIN_MAX, TRAIN_PER_CELL, LargeVectorIndex, large_cells

    queries = synthetic(N_QUERIES, seed=2)
    nlist = large_cells(n)
    rss_before = _rss_mb()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="montage-large-") as tmp:
        t = time.perf_counter()
        sample = synthetic(min(TRAIN_PER_CELL * nlist, TRAIN_MAX), seed=3)  # a sample of it
        index = LargeVectorIndex.create(Path(tmp), sample, expected_rows=n)
        train_s = time.perf_counter() - t
        nlist = int(index._manifest["nlist"])  # the sample may allow fewer than large_cells(n)
        print(json.dumps({"bench": "search", "n": n, "stage": "trained", "nlist": nlist,
                          "train_s": round(train_s, 1)}), flush=True)
        del sample
        best_s = np.full((len(queries), K), -np.inf, np.float32)
        best_i = np.full((len(queries), K), -1, np.int64)
        gen_s = exact_s = 0.0
        appends, steps = [], {}
        start = 0
        t = time.perf_counter()
        for x in synthetic_chunks(n, seed=1, chunk=commit_rows):
            gen_s += time.perf_counter() - t
            t = time.perf_counter()
            scores = queries @ x.T
            kk = min(K, len(x))
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            s_all = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], axis=1)
            i_all = np.concatenate([best_i, top + start], 1)
            keep = np.argsort(-s_all, axis=1)[:, :K]
            best_s = np.take_along_axis(s_all, keep, 1)
            best_i = np.take_along_axis(i_all, keep, 1)
            exact_s += time.perf_counter() - t
            t = time.perf_counter()
            start = index.append(x).stop
            appends.append(time.perf_counter() - t)
            for step, s in index.timings.items():
                steps[step] = steps.get(step, 0.0) + s
            if start % 1_000_000 == 0 or start == n:
                print(json.dumps({"bench": "search", "n": n, "stage": "appending", "rows": start,
                                  "elapsed_s": round(time.perf_counter() - started, 1),
                                  "append_s_last": round(appends[-1], 2),
                                  "rss_mb": _rss_mb()[0],
                                  "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
            t = time.perf_counter()
        build_s = time.perf_counter() - started
        rss_built, rss_peak = _rss_mb()
        disk = sum(p.stat().st_size for p in Path(tmp).iterdir())
        index.close()
        del index
        np.save(Path(tmp) / "bench-truth.npy", best_i)
        built = {"bench": "search", "n": n, "index": "ivfpq (retrieval.index.largevectors)",
                 "nlist": nlist, "build_s": round(build_s, 1), "train_s": round(train_s, 1),
                 "append_s_total": round(sum(appends), 1),
                 "append_steps_s": {k: round(v, 1) for k, v in steps.items()},
                 "append_s_per_commit_mean": round(sum(appends) / len(appends), 2),
                 "commits": len(appends), "generate_s": round(gen_s, 1),
                 "exact_truth_s": round(exact_s, 1), "rss_mb_before": rss_before,
                 "rss_mb_after_build": rss_built, "rss_mb_peak_build": rss_peak,
                 "disk_mb": round(disk / 2**20)}
        # searched from a fresh process, as `montage search` would: its memory is the index's
        subprocess.run([sys.executable, __file__, "--search-large", tmp, "--built",
                        json.dumps(built)], check=True)


def search_large(folder: Path, built: dict) -> None:
    """Open the large index in ``folder`` (this process: nothing else loaded), then measure
    recall against the truth the build saved, and latency, at a few settings."""
    from retrieval.index.largevectors import NPROBE, RERANK, LargeVectorIndex

    truth = np.load(folder / "bench-truth.npy")
    queries = synthetic(N_QUERIES, seed=2)
    rss_start = _rss_mb()[0]
    t = time.perf_counter()
    index = LargeVectorIndex.open(folder)
    open_s = time.perf_counter() - t
    rss_open = _rss_mb()[0]
    half = RERANK // 2
    for nprobe, rerank in ((NPROBE // 2, half), (NPROBE, half), (NPROBE * 2, half),
                           (NPROBE, RERANK), (NPROBE * 2, RERANK), (NPROBE * 4, RERANK)):
        index.nprobe, index.rerank = nprobe, rerank
        _, found = index.search(queries, K)
        print(json.dumps({
            **built, "nprobe": nprobe, "rerank": rerank * K,
            "default": (nprobe, rerank) == (NPROBE, RERANK), "open_s": round(open_s, 1),
            "rss_mb_process_start": rss_start, "rss_mb_after_open": rss_open,
            "recall@50": round(recall(truth, found), 4), **latency_ms(index, queries),
            "rss_mb_after_searches": _rss_mb()[0], "rss_mb_peak_search": _rss_mb()[1],
            "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    index.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--ivf-max", type=int, default=100_000,
                        help="also build IVF (for comparison) up to this size")
    parser.add_argument("--exact-max", type=int, default=1_000_000,
                        help="above this size only the large index (IVF-PQ, rows on disk) is "
                             "built, from vectors generated in chunks (e.g. --sizes 10000000)")
    parser.add_argument("--search-large", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--built", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.search_large:
        search_large(args.search_large, json.loads(args.built))
        return
    import faiss

    print(json.dumps({"bench": "search", "machine": platform.machine(), "cpus": os.cpu_count(),
                      "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "dim": DIM, "k": K}), flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        if n > args.exact_max:  # no full copy of the vectors: the large index only
            run_large(n)
        else:
            run_size(n, with_ivf=n <= args.ivf_max)


if __name__ == "__main__":
    main()
