"""montage's renderer against moviepy on the same edit, in one run: `python bench/render.py`.

The demo's edit (made by `make demo` if missing) rendered to 1280x720 H.264 + AAC twice: by
montage (`render_timeline`, no clip cache, so every clip is encoded) and by moviepy (the same
cut built with `montage.film.moviepy_clip` and written with `write_videofile`, libx264
"veryfast" as montage uses). Prints seconds, times real time, and the ratio. Part of `make bench`.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from montage.film import moviepy_clip, read_timeline, render_timeline  # noqa: E402


def main() -> None:
    project = ROOT / "out" / "demo" / "project"
    if not (project / "edit.otio").is_file():
        from montage.cli import main as montage

        montage(["demo", "--quiet"])
    edl = read_timeline(project / "edit.otio")
    print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                      "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0],
                      "film_seconds": round(edl.seconds, 2), "shots": len(edl.decisions)}))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        render_timeline(project / "edit.otio", Path(tmp) / "montage.mp4")
        ours = time.perf_counter() - t
        t = time.perf_counter()
        clip = moviepy_clip(project)
        try:
            clip.write_videofile(str(Path(tmp) / "moviepy.mp4"), fps=float(edl.rate), codec="libx264",
                                 preset="veryfast", audio_codec="aac", logger=None,
                                 threads=os.cpu_count() or 1)
        finally:
            clip.close()
        theirs = time.perf_counter() - t
    for name, seconds in (("montage render_timeline", ours), ("moviepy write_videofile", theirs)):
        print(json.dumps({"renderer": name, "seconds": round(seconds, 2),
                          "x_realtime": round(edl.seconds / seconds, 2)}))
    print(json.dumps({"summary": "render", "montage_over_moviepy_speed": round(theirs / ours, 2)}))


if __name__ == "__main__":
    main()
