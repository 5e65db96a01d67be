"""A small real studio project for the studio tests: tiny clips made by ffmpeg, the real planner,
index, optimizer and renderer, and the real server on a loopback socket."""
from __future__ import annotations

import shutil
from pathlib import Path

from montage.pipeline.recut import MakeOptions
from montage.studio import Running, Studio, start_in_thread
from tests.conftest import make_footage

TOKEN = "test-token-0123456789abcdef"
SENTENCES = [
    "A red door opens slowly.",
    "The blue sea is calm tonight.",
    "A green field waits for the rain.",
    "A yellow taxi drives through the night.",
    "The white moon rises over the hills.",
]
OPTIONS = MakeOptions(threshold=-50.0, width=160, height=90, progress=False, contact_sheet=False)


def make_library(root: Path) -> Path:
    """Four files, indexed once: each studio copies the folder with its index."""
    from retrieval.index.build import build_index

    make_footage(root, ["red", "blue", "green", "yellow", "white", "purple"], seconds=3.0,
                 pattern=6.0, size="160x90")
    build_index(root, "proxy", progress=False)
    return root


def script_text(sentences: list[str]) -> str:
    return " ".join(sentences[:3]) + "\n\n" + " ".join(sentences[3:]) + "\n"


def new_studio(tmp: Path, library: Path, sentences: list[str] = SENTENCES,
               options: MakeOptions = OPTIONS) -> Studio:
    """A studio on a fresh copy of ``library`` whose first cut is made (index shared)."""
    lib = tmp / "library"
    if not lib.exists():
        shutil.copytree(library, lib, symlinks=True)
    script = tmp / "story.txt"
    script.write_text(script_text(sentences), encoding="utf-8")
    studio = Studio(script, lib, tmp / "film.montage", tmp / "film.mp4", options)
    job = studio.start()
    assert job is not None
    status = studio.wait(job, timeout=300)
    assert status["error"] is None, status["error"]
    return studio


def serve_in_thread(studio: Studio) -> Running:
    """The real uvicorn server on a free loopback port, in a thread."""
    return start_in_thread(studio, TOKEN)
