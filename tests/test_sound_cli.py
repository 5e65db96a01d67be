"""`montage make --narrate --music` and `montage demo --narrate` end to end (slow: they index a
library and render a whole film; `make test-slow`)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from montage.cli import main
from montage.film import read_srt, read_timeline
from montage.film.audio import TARGET_I, TARGET_TP, measure_loudness
from montage.film.soundtrack import LEAD, TAIL
from montage.film.timeline import read_soundtrack
from montage.sound.music import track_beats
from montage.optimize import load_rules
from tests.conftest import make_footage
from tests.test_sound import make_music

SCRIPT = """A red wall fills the screen. A blue sky follows it.

A green field stretches away. A dragon made of glass sings opera on the moon.
"""


@pytest.mark.slow
def test_make_narrated_with_music_cuts_on_beats_and_recuts_from_the_cache(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    make_footage(lib, ["red", "blue", "green"], seconds=4, pattern=6.0, audio=True,
                 stills={"stills/card.png": "testsrc2"}, still_size="48x64")
    script = tmp_path / "story.txt"
    script.write_text(SCRIPT)
    music = make_music(tmp_path / "music.wav", 120, 7)
    out = tmp_path / "film.mp4"
    args = ["make", str(script), "--library", str(lib), "--out", str(out), "--size", "128x72",
            "--narrate", "--music", str(music), "--quiet"]
    assert main(args) == 0
    project = tmp_path / "film.montage"
    edl = read_timeline(project / "edit.otio")
    sound = read_soundtrack(project / "edit.otio")
    assert sound is not None and [v.shot_id for v in sound.lines] == [d.shot_id for d in edl.decisions]
    for v, d, start in zip(sound.lines, edl.decisions, edl.starts()):
        assert d.frames / edl.rate >= LEAD + v.speech + TAIL - 0.04, "a cut never lands mid-word"
    grid = track_beats(music)
    beats = [b + k * grid.seconds for k in range(4) for b in grid.beats]
    tolerance = load_rules("default").beat_tolerance
    cuts = [float(Fraction(s + d.frames) / edl.rate) for s, d in zip(edl.starts(), edl.decisions)]
    on_beat = [min(abs(c - b) for b in beats) <= 1 / 25 + 0.001 for c in cuts[:-1]]
    assert sum(on_beat) >= len(on_beat) - 1, (cuts, beats)
    integrated, peak = measure_loudness(out)
    assert abs(integrated - TARGET_I) <= 0.5 and peak <= TARGET_TP
    assert len(read_srt(tmp_path / "film.srt")) == len(edl.decisions)
    assert tolerance > 0
    voices = {Path(v.path): Path(v.path).stat().st_mtime_ns for v in sound.lines}
    assert main(args) == 0  # a recut: no sentence is spoken again
    assert {p: p.stat().st_mtime_ns for p in voices} == voices


@pytest.mark.slow
def test_demo_narrate_goes_beside_the_demo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--narrate", "--quiet"]) == 0
    film = tmp_path / "out" / "demo-narrated" / "film.mp4"
    assert film.is_file() and not (tmp_path / "out" / "demo").exists()
    sound = read_soundtrack(tmp_path / "out" / "demo-narrated" / "project" / "edit.otio")
    assert sound is not None and len(sound.lines) >= 10
    integrated, peak = measure_loudness(film)
    assert abs(integrated - TARGET_I) <= 0.5 and peak <= TARGET_TP
