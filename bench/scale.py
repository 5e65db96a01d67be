"""Size: time and peak memory of `montage make` for 75, 500 and 2,000 sentences on a warm index.

`python bench/scale.py [--sizes 75,500,2000] [--size 320x180]`. The library is bench/recut.py's
(the demo library plus synthetic clips, in out/bench/library, indexed once). Each size runs in
its own process (a fresh project: plan, search, solve, encode every clip, join, contact sheet,
report), so its peak RSS is its own; ffmpeg's peak (the largest child) is printed apart.
Prints one JSON line per size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from recut import OUT, emit, paragraphs_of, script_sentences, synth_library, write  # noqa: E402


def one(n: int, size: str) -> None:
    """Make a film of ``n`` sentences in this process; print its numbers."""
    from fractions import Fraction

    from montage.pipeline.recut import MakeOptions, Recutter

    work = OUT / f"scale-{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script, out = work / "story.txt", work / "film.mp4"
    write(script, paragraphs_of(script_sentences(n)))
    w, h = (int(v) for v in size.split("x"))
    options = MakeOptions(progress=False, width=w, height=h, rate=Fraction(25))
    started = time.perf_counter()
    res = Recutter(OUT / "library", work / "project", options).cut(script, out)
    seconds = time.perf_counter() - started
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"sentences": n, "shots": res.shots, "film_s": round(res.seconds, 1),
                      "seconds": round(seconds, 1), "peak_rss_mb": round(me / 1024, 1),
                      "peak_child_rss_mb": round(kids / 1024, 1), "clips_encoded": res.encoded,
                      "placeholders": res.placeholders,
                      "timings_s": {k: round(v, 2) for k, v in res.timings.items()}}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="75,500,2000")
    parser.add_argument("--size", default="320x180", help="film size (default 320x180)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        one(args.one, args.size)
        return
    emit(cpus=os.cpu_count(), film_size=args.size)
    t = time.perf_counter()
    synth_library(OUT / "library")
    from retrieval.index.build import build_index

    build_index(OUT / "library", "proxy", progress=False)  # warm before any timing
    emit(stage="library ready (indexed)", seconds=round(time.perf_counter() - t, 1))
    for n in (int(v) for v in args.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--size", args.size],
                              capture_output=True, text=True)
        if proc.returncode:
            emit(sentences=n, failed=proc.returncode, stderr=proc.stderr[-2000:])
        else:
            print(proc.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
