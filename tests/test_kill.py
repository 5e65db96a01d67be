"""kill -9 during `montage make`: a real subprocess recuts a finished project and SIGKILLs
itself at a named stage (MONTAGE_TEST_STOP_AT, read in montage/pipeline/recut.py). Before the
commit, the previous film, edit.otio and state are intact and consistent; after it, the next
writer (or a reader) finishes publishing; either way the next run finishes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from montage.cli import main
from montage.film import read_timeline
from montage.pipeline.recut import STOP_AT
from montage.project import load_state
from retrieval.media.ffmpeg import count_video_frames
from tests.conftest import make_footage

ROOT = Path(__file__).resolve().parents[1]
MAIN = "import sys; from montage.cli import main; sys.exit(main(sys.argv[1:]))"
FIRST = "A red door opens slowly. The blue sea is calm tonight.\n\nA colourful test pattern moves.\n"
SECOND = ("A red door opens slowly. The blue sea is calm tonight.\n\n"
          "A green field waits for the rain. A colourful test pattern moves.\n")


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_footage(tmp_path_factory.mktemp("lib"), ["red", "blue", "green", "yellow"],
                        stills={"card.png": "testsrc2"})


def _argv(script: Path, library: Path, out: Path) -> list[str]:
    return ["make", str(script), "--library", str(library), "--out", str(out), "--quiet",
            "--size", "64x36", "--threshold", "-50"]


def _snapshot(project: Path, out: Path) -> dict[str, bytes]:
    files = [out, out.with_suffix(".srt"), project / "state.json", project / "edit.otio",
             project / "plan.json", project / "candidates.json", project / "report.md"]
    return {p.name: p.read_bytes() for p in files}


def _consistent(project: Path, out: Path) -> None:
    """The film, edit.otio and state describe one cut, whole."""
    state = load_state(project)
    edit = read_timeline(project / "edit.otio")
    assert read_timeline(project / "history" / f"{state.cut:04d}" / "edit.otio") == edit
    assert count_video_frames(out) == edit.frames
    assert Path(state.film) == out.resolve()


def _leftovers(project: Path, out: Path) -> list[str]:
    hidden = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    temps = [p.name for p in (project / "cache").iterdir() if ".tmp" in p.name]
    return hidden + temps + [p.name for p in project.iterdir() if p.name.endswith(".tmp")]


def _killed_at(stage: str, tmp_path: Path, library: Path) -> tuple[Path, Path, Path, dict]:
    """Cut 1 in this process; cut 2 (one sentence added) in a subprocess killed at ``stage``."""
    script, out = tmp_path / "story.txt", tmp_path / "film.mp4"
    project = tmp_path / "film.montage"
    script.write_text(FIRST)
    assert main(_argv(script, library, out)) == 0
    before = _snapshot(project, out)
    script.write_text(SECOND)
    env = {**os.environ, "PYTHONPATH": str(ROOT), STOP_AT: stage}
    proc = subprocess.run([sys.executable, "-c", MAIN, *_argv(script, library, out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return script, out, project, before


def _finishes(script: Path, out: Path, project: Path, library: Path) -> None:
    assert main(_argv(script, library, out)) == 0
    assert load_state(project).cut == 2
    assert len(read_timeline(project / "edit.otio").decisions) == 4
    _consistent(project, out)
    assert not _leftovers(project, out), _leftovers(project, out)


@pytest.mark.parametrize("stage", [
    "encoded:1",
    pytest.param("indexed", marks=pytest.mark.slow),
    pytest.param("solved", marks=pytest.mark.slow),
    pytest.param("joining", marks=pytest.mark.slow),
    pytest.param("state", marks=pytest.mark.slow),
])
def test_killed_before_the_commit_leaves_the_previous_cut(stage, tmp_path, library):
    script, out, project, before = _killed_at(stage, tmp_path, library)
    assert _snapshot(project, out) == before  # byte for byte: film, srt, state, edit, report
    assert load_state(project).cut == 1
    _consistent(project, out)
    _finishes(script, out, project, library)


@pytest.mark.slow
def test_killed_after_the_commit_is_finished_by_the_next_reader(tmp_path, library, capsys):
    script, out, project, before = _killed_at("committed", tmp_path, library)
    assert load_state(project).cut == 2  # committed, not yet published
    assert out.read_bytes() == before["film.mp4"]
    assert main(["history", str(project)]) == 0  # a reader finishes the publication
    assert out.read_bytes() != before["film.mp4"]
    _consistent(project, out)
    assert not _leftovers(project, out)
    assert main(_argv(script, library, out)) == 0  # and the next run goes on from cut 2
    assert load_state(project).cut == 3
    _consistent(project, out)
