"""Where one 100k-row append of the large vector index goes, at 10M's cell count (1638).

python bench/large_append.py [--rows 100000] [--cells 1638]: trains retrieval.index.largevectors on
the 10M bench's sample size, then times one append step by step (the index's own timings:
assigning cells and PQ-encoding, writing the codes, writing and fsyncing the rows, adding the
codes in memory), the bench's own costs around it (generating the synthetic rows, keeping the
exact top-50 of 200 queries), and, for comparison, assigning the same rows to the cells with
an HNSW graph over the centres (what the first version used) instead of the exact BLAS scan.
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_scale import DIM, K, N_QUERIES, synthetic, synthetic_chunks  # noqa: E402

from retrieval.index.largevectors import TRAIN_MAX, LargeVectorIndex, cells_for  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cells", type=int, default=cells_for(10_000_000))
    args = parser.parse_args(argv)
    import faiss

    out: dict = {"bench": "large_append", "rows": args.rows, "cells": args.cells,
                 "cpus": os.cpu_count(), "faiss": faiss.__version__}
    with tempfile.TemporaryDirectory(prefix="montage-append-") as tmp:
        t = time.perf_counter()
        sample = synthetic(TRAIN_MAX, seed=3)
        index = LargeVectorIndex.create(Path(tmp), sample, nlist=args.cells)
        out["train_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        x = next(synthetic_chunks(args.rows, seed=1, chunk=args.rows))
        out["bench_generate_s"] = round(time.perf_counter() - t, 2)
        queries = synthetic(N_QUERIES, seed=2)
        t = time.perf_counter()
        scores = queries @ x.T
        np.argpartition(-scores, K - 1, axis=1)[:, :K]
        out["bench_exact_truth_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        index.append(x)
        out["append_s"] = round(time.perf_counter() - t, 2)
        out.update({k: round(v, 2) for k, v in index.timings.items()})
        centres = faiss.extract_index_ivf(index._index).quantizer.reconstruct_n(0, args.cells)
        graph = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        graph.add(centres)
        t = time.perf_counter()
        _, by_graph = graph.search(x, 1)
        out["assign_hnsw_s"] = round(time.perf_counter() - t, 2)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(centres)
        t = time.perf_counter()
        _, by_scan = flat.search(x, 1)
        out["assign_exact_scan_s"] = round(time.perf_counter() - t, 2)
        out["assign_agreement"] = round(float(np.mean(by_graph == by_scan)), 4)
        out["segment_bytes"] = (Path(tmp) / "seg-000000000000.codes").stat().st_size
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
