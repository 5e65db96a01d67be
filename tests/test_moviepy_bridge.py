"""The cut as a moviepy clip: same length, size and pictures as montage's own film."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from montage.film import moviepy_clip, read_timeline
from montage.pipeline.recut import MakeOptions, Recutter
from planner.errors import ExportError
from tests.conftest import make_cut_clip, make_still

moviepy = pytest.importorskip("moviepy", reason="the bridge needs moviepy: pip install 'montage[moviepy]'")

OPTIONS = MakeOptions(threshold=-50.0, width=160, height=90, progress=False, contact_sheet=False)


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    root = tmp_path_factory.mktemp("bridge")
    lib = root / "lib"
    make_cut_clip(lib / "colors.mp4", ["red", "blue", "green", "yellow"], seconds=3.0, size="160x90")
    make_still(lib / "bars.png", source="smptebars", size="120x90")
    script = root / "story.txt"
    script.write_text("A red door opens slowly. The blue sea is calm tonight.\n\n"
                      "A green field waits for the rain. Old bars of colour fill the screen.\n")
    project, film = root / "proj", root / "film.mp4"
    Recutter(lib, project, OPTIONS).cut(script, film)
    return project, film


def test_the_bridge_gives_the_films_length_size_and_pictures(cut):
    project, film = cut
    edl = read_timeline(project / "edit.otio")
    clip = moviepy_clip(project)
    reference = moviepy.VideoFileClip(str(film))
    try:
        assert clip.size == [160, 90] or tuple(clip.size) == (160, 90)
        assert clip.duration == pytest.approx(edl.seconds, abs=1 / 25)
        starts = edl.starts()
        for d, start in zip(edl.decisions, starts):
            if d.kind == "still":
                continue  # the film pans across stills; the bridge holds them
            t = float((start + d.frames / 2) / edl.rate)
            ours = clip.get_frame(t).astype(np.float32)
            theirs = reference.get_frame(t).astype(np.float32)
            assert np.abs(ours - theirs).mean() < 12, (d.shot_id, d.library_shot)
    finally:
        clip.close()
        reference.close()


def test_a_project_without_a_cut_is_one_clear_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no cut"):
        moviepy_clip(tmp_path / "empty")
