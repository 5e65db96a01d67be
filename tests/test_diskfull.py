"""A full disk while a recut writes: a subprocess of `montage make` under a file size limit
(RLIMIT_FSIZE: no root needed, and ffmpeg inherits it). One clear error, no half-written
film, the previous cut intact, and the next run (with room) finishes."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from montage.cli import main
from montage.project import load_state
from tests.test_kill import (FIRST, MAIN, ROOT, SECOND, _argv, _consistent, _leftovers,
                             _snapshot, library)  # noqa: F401 (the fixture)

SWAPPED = "A colourful test pattern moves.\n\nA red door opens slowly. The blue sea is calm tonight.\n"


def _recut_with_limit(tmp_path: Path, library: Path, text: str, limit) -> tuple:
    script, out = tmp_path / "story.txt", tmp_path / "film.mp4"
    project = tmp_path / "film.montage"
    script.write_text(FIRST)
    assert main(_argv(script, library, out)) == 0
    before = _snapshot(project, out)
    script.write_text(text)
    size = limit(project, out)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    proc = subprocess.run([sys.executable, "-c", MAIN, *_argv(script, library, out)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=cap,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "cannot write" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert _snapshot(project, out) == before and load_state(project).cut == 1
    _consistent(project, out)
    assert main(_argv(script, library, out)) == 0  # room again: the recut finishes
    assert load_state(project).cut == 2
    _consistent(project, out)
    assert not _leftovers(project, out)


@pytest.mark.slow  # several seconds; CI runs it with make test-slow
def test_disk_full_while_encoding_a_clip(tmp_path, library):
    """A new sentence needs a new clip; no file may grow past half the smallest cached clip."""
    _recut_with_limit(tmp_path, library, SECOND,
                      lambda project, out: min(p.stat().st_size
                                               for p in (project / "cache").glob("*.mp4")) // 2)


@pytest.mark.slow
def test_disk_full_while_joining_the_film(tmp_path, library):
    """Paragraphs swapped: every clip is cached, only the join writes; it cannot finish."""
    _recut_with_limit(tmp_path, library, SWAPPED, lambda project, out: out.stat().st_size // 2)
