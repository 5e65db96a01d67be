"""Export speed: `python bench/export.py [--shots 500] [--cards 40] [--stills 10]` (in `make bench`).

Builds a synthetic project (edit.otio written by montage.film.write_timeline from an
EditDecisionList over real small clips made by ffmpeg, at 1280x720, 25 fps), exports it to every
format, and prints JSON lines: the card and still rendering timed apart (the first export renders
them into NAME-media/, later ones reuse them), then seconds per format with the media ready.
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
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from montage.film import FORMATS, export_project, write_timeline  # noqa: E402
from montage.optimize import EditDecision, EditDecisionList  # noqa: E402
from retrieval.media.ffmpeg import ffmpeg_exe  # noqa: E402

SOURCES = ["testsrc2", "smptebars", "rgbtestsrc", "testsrc", "yuvtestsrc"]
TARGET_S = 2.0


def _library(folder: Path) -> tuple[list[Path], list[Path]]:
    clips, stills = [], []
    for i, src in enumerate(SOURCES):
        clip = folder / f"clip{i}.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"{src}=size=320x180:rate=25:duration=12", "-f", "lavfi", "-i",
                        "sine=duration=12", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)], check=True)
        clips.append(clip)
        still = folder / f"still{i}.png"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"{src}=size=640x360:rate=1", "-frames:v", "1", str(still)], check=True)
        stills.append(still)
    return clips, stills


def _edl(clips: list[Path], stills: list[Path], shots: int, cards: int, n_stills: int,
         rng: random.Random) -> EditDecisionList:
    kinds = ["card"] * cards + ["still"] * n_stills + ["video"] * (shots - cards - n_stills)
    rng.shuffle(kinds)
    decisions = []
    for i, kind in enumerate(kinds):
        frames = rng.randint(40, 100)
        if kind == "video":
            media, start = str(rng.choice(clips)), rng.randint(0, 290 - frames)
        elif kind == "still":
            media, start = str(rng.choice(stills)), 0
        else:
            media, start = "", 0
        decisions.append(EditDecision(
            f"sh-{i:04d}", f"Shot {i}: something happens here.",
            "placeholder" if kind == "card" else "library", kind, media, start, frames, 0.5))
    return EditDecisionList(Fraction(25), 1280, 720, tuple(decisions))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shots", type=int, default=500)
    ap.add_argument("--cards", type=int, default=40)
    ap.add_argument("--stills", type=int, default=10)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="montage-bench-export-"))
    try:
        lib = work / "library"
        lib.mkdir(parents=True, exist_ok=True)
        clips, stills = _library(lib)
        edl = _edl(clips, stills, args.shots, args.cards, args.stills, random.Random(13))
        project = work / "film.montage"
        write_timeline(edl, project / "edit.otio", name="bench")
        out = work / "export"
        shutil.rmtree(out, ignore_errors=True)
        info = {"machine": platform.machine(), "cpus": os.cpu_count(), "shots": args.shots,
                "cards": args.cards, "stills": args.stills, "film_s": round(edl.seconds, 1)}
        print(json.dumps({"bench": "export", **info}), flush=True)
        t = time.perf_counter()
        first = export_project(project, out / "film.otio")
        print(json.dumps({"media": "cards and stills", "rendered": first.media.rendered,
                          "copied": first.media.copied,
                          "seconds": round(first.media.seconds, 2),
                          "per_clip_s": round(first.media.seconds / max(1, first.media.rendered), 3),
                          "first_export_total_s": round(time.perf_counter() - t, 2)}), flush=True)
        for ext in FORMATS:
            t = time.perf_counter()
            result = export_project(project, out / f"film{ext}")
            total = time.perf_counter() - t
            assert result.media.rendered == 0, "media are rendered once"
            print(json.dumps({"format": ext, "seconds": round(total, 3),
                              "write_s": round(result.write_seconds, 3),
                              "media_check_s": round(result.media.seconds, 3),
                              "bytes": result.path.stat().st_size,
                              "under_target": total < TARGET_S}), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
