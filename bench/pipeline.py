"""Per-stage times of the demo film on this machine: `make bench` (or python bench/pipeline.py).

Indexes a fresh copy of the demo library (cold), then again (warm, nothing changed), and times
plan, search, optimize and render separately. Prints one JSON object per stage and a summary.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from montage.cli.demo import DEMO, fetch_demo_library  # noqa: E402
from montage.optimize import optimize  # noqa: E402
from montage.film import render_timeline, write_timeline  # noqa: E402
from planner.nlp import load_nlp  # noqa: E402
from planner.plan import load_script  # noqa: E402
from retrieval.index.build import build_index
from retrieval.search.footage import open_index  # noqa: E402
from retrieval.search.candidates import candidates_for_plan  # noqa: E402


def timed(name: str, fn, **extra):
    t = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t
    print(json.dumps({"stage": name, "seconds": round(seconds, 4), **extra}), flush=True)
    return value, seconds


def main() -> None:
    print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                      "python": platform.python_version()}))
    source = fetch_demo_library()
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "library"
        shutil.copytree(source, library, ignore=shutil.ignore_patterns(".montage"))
        timed("load spaCy model", load_nlp)
        plan, t_plan = timed("plan", lambda: load_script(DEMO / "script.txt"))
        timed("index cold", lambda: build_index(library, "proxy", progress=False))
        timed("index warm", lambda: build_index(library, "proxy", progress=False))
        index, _ = timed("open index (loads embedder lazily)", lambda: open_index(library))
        timed("search (first: loads MiniLM)", lambda: candidates_for_plan(index, plan, top=10))
        cands, t_search = timed("search (warm)", lambda: candidates_for_plan(index, plan, top=10))
        sol, t_opt = timed("optimize", lambda: optimize(plan, cands, rate=Fraction(25)))
        edit = Path(tmp) / "edit.otio"
        write_timeline(sol.edl, edit)
        out = Path(tmp) / "film.mp4"
        _, t_render = timed("render 1280x720", lambda: render_timeline(edit, out, workdir=Path(tmp) / "r"),
                            film_seconds=round(sol.edl.seconds, 2))
        print(json.dumps({
            "summary": "demo",
            "shots": len(plan.shots),
            "plan+search+optimize_s (warm index, models loaded)": round(t_plan + t_search + t_opt, 3),
            "render_x_realtime": round(sol.edl.seconds / t_render, 2),
        }))


if __name__ == "__main__":
    main()
