"""Indexing one library with the local engine and with the Ray engine (1 and 2 workers).

python bench/index_ray.py [--copies N]. The library is the demo footage (real clips and
stills), copied N times under different folder names (default 2), so there are enough files
to spread. Each engine indexes a fresh copy twice: cold (models loaded inside the run: in
this process for local, in every Ray worker for Ray) and warm (a second fresh copy, models
already loaded: what a long run costs per file). Prints one JSON line per run and a summary:
seconds, files/s, seconds of video analysed per wall second. Ray's start-up (``ray.init``)
is timed apart. Needs Ray (pip install 'montage[ray]').
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from montage.cli.demo import fetch_demo_library  # noqa: E402
from retrieval import build_index  # noqa: E402
from retrieval.analysis.workers import default_workers  # noqa: E402


def _library(dest: Path, copies: int, seed: Path) -> Path:
    for i in range(copies):
        shutil.copytree(seed, dest / f"reel{i:02d}", ignore=shutil.ignore_patterns(".montage"))
    return dest


def _line(engine: str, workers: int, phase: str, report, seconds: float) -> dict:
    row = {"engine": engine, "workers": workers, "phase": phase, "files": report.files_indexed,
           "shots": report.shots, "seconds": round(seconds, 2),
           "files_per_s": round(report.files_indexed / seconds, 3),
           "video_s_per_s": round(report.footage_seconds / seconds, 2)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=2)
    args = ap.parse_args()
    try:
        import ray
    except ImportError:
        raise SystemExit("Ray is not installed: pip install 'montage[ray]'")
    from retrieval.index.engines.ray_engine import build_index_ray

    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "cores": os.cpu_count(), "ray": ray.__version__}), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="montage-bench-ray-") as tmp:
        tmp = Path(tmp)
        seed = fetch_demo_library(tmp / "seed")
        n = 0

        def fresh() -> Path:
            nonlocal n
            n += 1
            return _library(tmp / f"lib{n}", args.copies, seed)

        for phase in ("cold", "warm"):
            root = fresh()
            t = time.perf_counter()
            report = build_index(root, "proxy", progress=False)  # workers as the CLI's default
            rows.append(_line("local", default_workers(report.files_indexed), phase, report,
                              time.perf_counter() - t))
        for workers in (1, 2):
            t = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=256 << 20,
                     logging_level="ERROR", log_to_driver=False)
            print(json.dumps({"ray_init_s": round(time.perf_counter() - t, 2),
                              "workers": workers}), flush=True)
            try:
                for phase in ("cold", "warm"):
                    root = fresh()
                    t = time.perf_counter()
                    report = build_index_ray(root, "proxy", progress=False)
                    rows.append(_line("ray", workers, phase, report, time.perf_counter() - t))
            finally:
                ray.shutdown()
    warm = {(r["engine"], r["workers"]): r for r in rows if r["phase"] == "warm"}
    one, two = warm[("ray", 1)], warm[("ray", 2)]
    local = next(r for r in rows if r["engine"] == "local" and r["phase"] == "warm")
    print(json.dumps({"summary": "warm runs", "local_s": local["seconds"],
                      "local_workers": local["workers"],
                      "ray1_s": one["seconds"], "ray2_s": two["seconds"],
                      "ray_speedup_2_over_1": round(one["seconds"] / two["seconds"], 2),
                      "ray1_files_per_s": one["files_per_s"]}), flush=True)


if __name__ == "__main__":
    main()
