"""Faults montage must survive: repeated lines, unreadable libraries, hand-changed projects."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from montage.cli import main
from montage.pipeline.recut import MakeOptions, Recutter
from montage.film import read_timeline
from montage.project import load_state
from tests.conftest import make_clip, make_cut_clip, make_footage, make_still

OPTIONS = MakeOptions(threshold=-50.0, width=64, height=36, progress=False, contact_sheet=False)


def test_a_repeated_sentence_as_two_title_cards_renders(tmp_path):
    """Both copies of a refrain become identical title cards: one cache entry, encoded once."""
    lib = tmp_path / "lib"
    make_still(lib / "card.png")
    script = tmp_path / "story.txt"
    script.write_text("The bells ring out.\n\nA checkered card waits.\n\nThe bells ring out.\n")
    project, out = tmp_path / "proj", tmp_path / "film.mp4"
    opts = MakeOptions(threshold=50.0, width=64, height=36, progress=False, contact_sheet=False)
    res = Recutter(lib, project, opts).cut(script, out)
    edl = read_timeline(project / "edit.otio")
    cards = [d for d in edl.decisions if d.kind == "card"]
    assert len(cards) == 3 and res.placeholders == 3 and out.is_file()
    assert cards[0].text == cards[2].text
    # the two refrains are one segment: it is encoded once and reused
    assert res.encoded == 2, res
    assert not list((project / "cache").glob("*.tmp.*"))


@pytest.mark.parametrize("cached", [True, False])
def test_identical_segments_are_encoded_once(tmp_path, cached):
    """At the render's depth: one refrain three times, with and without a clip cache."""
    from fractions import Fraction

    from montage.film import render_edit, write_timeline
    from montage.optimize import EditDecision, EditDecisionList
    from retrieval.media.ffmpeg import count_video_frames

    def card(shot: str, text: str) -> EditDecision:
        return EditDecision(shot, text, "placeholder", "card", "", 0, 12, 0.0)

    # 24 fps: 2000 samples a frame, so every 12-frame card has the same sound length
    edl = EditDecisionList(Fraction(24), 64, 36, (card("a", "Again."), card("b", "Once."),
                                                  card("c", "Again."), card("d", "Again.")))
    otio = write_timeline(edl, tmp_path / "e.otio")
    cache = tmp_path / "cache" if cached else None
    res = render_edit(otio, tmp_path / "film.mp4", cache=cache, workdir=tmp_path / "work")
    assert (res.encoded, res.reused) == (2, 2)
    assert count_video_frames(res.path) == 48
    if cached:
        assert len(list(cache.glob("*.mp4"))) == 2 and not list(cache.glob("*.tmp.*"))
        again = render_edit(otio, tmp_path / "film2.mp4", cache=cache)
        assert again.encoded == 0


def test_a_library_of_only_unreadable_files_is_one_clear_error(tmp_path, capsys):
    """Corrupt, truncated and empty files only: an error naming how many, which and why, not
    a film of title cards; a second run (the failures remembered in the index) says the same."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a_noise.mp4").write_bytes(os.urandom(4096))
    (lib / "b_empty.mov").write_bytes(b"")
    (lib / "c_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    good = make_clip(tmp_path / "good.mp4", duration=2.0)
    (lib / "d_truncated.mp4").write_bytes(good.read_bytes()[:300])
    (lib / "e_empty.jpg").write_bytes(b"")
    script = tmp_path / "s.txt"
    script.write_text("A red door opens. The sea is calm.")
    out = tmp_path / "film.mp4"
    for _ in range(2):
        capsys.readouterr()
        assert main(["make", str(script), "--library", str(lib), "--out", str(out),
                     "--quiet"]) == 2
        err = capsys.readouterr().err
        line = next(x for x in err.splitlines() if x.startswith("error: "))
        assert "none of the 5 media files" in line and str(lib) in line
        assert "a_noise.mp4 (" in line and "b_empty.mov (the file is empty" in line
        assert "c_broken.png (" in line and "and 2 more" in line
        assert "hint: " in err and "Traceback" not in err
        assert not out.exists()
    assert main(["index", str(lib), "--quiet"]) == 2
    assert "none of the 5 media files" in capsys.readouterr().err


def test_a_library_with_some_unreadable_files_still_makes_a_film(tmp_path, capsys):
    lib = tmp_path / "lib"
    make_clip(lib / "good.mp4", duration=2.0)
    (lib / "noise.mp4").write_bytes(os.urandom(4096))
    (lib / "empty.png").write_bytes(b"")
    script = tmp_path / "s.txt"
    script.write_text("A colourful test pattern moves.")
    capsys.readouterr()
    assert main(["index", str(lib), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2" in out and "skipped noise.mp4" in out and "skipped empty.png" in out
    assert main(["make", str(script), "--library", str(lib), "--out", str(tmp_path / "f.mp4"),
                 "--size", "64x36", "--threshold", "-50", "--quiet"]) == 0
    assert read_timeline(tmp_path / "f.montage" / "edit.otio").decisions[0].media.endswith("good.mp4")


# -- a project changed by hand ----------------------------------------------------------------
SENTENCES = "A red door opens slowly. The blue sea is calm tonight.\n\nA colourful test pattern moves."


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = make_footage(tmp_path_factory.mktemp("lib"), ["red", "blue", "green", "yellow"])
    from retrieval.index.build import build_index

    build_index(root, "proxy", progress=False, workers=0)  # copied with the files: warm
    return root


@pytest.fixture
def made(tmp_path, library):
    """A project with one cut, made from a copy of the library (a test may delete from it)."""
    lib = tmp_path / "lib"
    shutil.copytree(library, lib)  # with its index (mtimes kept): nothing to analyse again
    script = tmp_path / "story.txt"
    script.write_text(SENTENCES)
    project, out = tmp_path / "proj", tmp_path / "film.mp4"
    Recutter(lib, project, OPTIONS).cut(script, out)
    return lib, script, project, out


def _frames_ok(project: Path, out: Path) -> bool:
    from retrieval.media.ffmpeg import count_video_frames

    return count_video_frames(out) == read_timeline(project / "edit.otio").frames


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "", '{"cut": "three"}', "half"])
def test_a_damaged_state_is_named_then_rebuilt_from_history(made, capsys, damage):
    lib, script, project, out = made
    state = project / "state.json"
    if damage == "half":
        damage = state.read_text()[: len(state.read_text()) // 2]
    elif damage == '{"cut": "three"}':
        damage = state.read_text().replace('"cut": 1', '"cut": "three"')
    state.write_text(damage)
    first = (project / "history" / "0001" / "edit.otio").read_bytes()
    capsys.readouterr()
    assert main(["history", str(project)]) == 2  # read-only commands name the file and the way out
    err = capsys.readouterr().err
    assert err.startswith(f"error: {state}: the project state is damaged")
    assert "run montage make again" in err and "Traceback" not in err
    res = Recutter(lib, project, OPTIONS).cut(script, out)
    err = capsys.readouterr().err
    assert "kept as state.json.damaged and rebuilt from cut 1" in err
    assert (project / "state.json.damaged").read_text() == damage
    assert res.cut == 2 and load_state(project).cut == 2
    assert (project / "history" / "0001" / "edit.otio").read_bytes() == first  # history kept
    assert res.kept == 3  # the old clips are preferred again
    assert _frames_ok(project, out)


def test_a_rebuilt_state_still_refuses_another_library(made, tmp_path):
    """The rebuilt state takes its library from the last cut: a recut from another library is
    refused as before, and state.json stays as it was until a cut commits."""
    from planner.errors import ProjectError

    lib, script, project, out = made
    (project / "state.json").write_text("{not json")
    other = tmp_path / "other"
    make_still(other / "x.png")
    with pytest.raises(ProjectError, match="was cut from the library"):
        Recutter(other, project, OPTIONS).cut(script, tmp_path / "other.mp4")
    assert (project / "state.json").read_text() == "{not json"
    assert Recutter(lib, project, OPTIONS).cut(script, out).cut == 2


def test_a_deleted_state_numbers_the_next_cut_after_the_history(made):
    lib, script, project, out = made
    first = (project / "history" / "0001" / "meta.json").read_text()
    (project / "state.json").unlink()
    res = Recutter(lib, project, OPTIONS).cut(script, out)
    assert res.cut == 2 and (project / "history" / "0001" / "meta.json").read_text() == first


def test_deleted_or_damaged_cache_clips_are_encoded_again(made):
    lib, script, project, out = made
    cache = sorted((project / "cache").glob("*.mp4"))
    assert len(cache) == 3
    cache[0].unlink()
    res = Recutter(lib, project, OPTIONS).cut(script, out)
    assert res.encoded == 1 and _frames_ok(project, out)
    for clip, junk in zip(sorted((project / "cache").glob("*.mp4")), (b"", os.urandom(3000))):
        clip.write_bytes(junk)  # cut short, overwritten
    out.unlink()  # else the unchanged film is copied and the damaged clips are not read
    res = Recutter(lib, project, OPTIONS).cut(script, out)
    assert res.encoded == 2 and _frames_ok(project, out)


def test_a_source_deleted_from_the_library_is_named_and_its_shot_chosen_anew(made, capsys):
    lib, script, project, out = made
    before = {d.shot_id: d for d in read_timeline(project / "edit.otio").decisions}
    victim = next(d for d in before.values() if d.media.endswith("colors.mp4"))
    (lib / "colors.mp4").unlink()
    capsys.readouterr()
    res = Recutter(lib, project, OPTIONS).cut(script, out)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if victim.shot_id in x)
    assert "warning:" in line and "colors.mp4" in line and "deleted" in line
    after = {d.shot_id: d for d in read_timeline(project / "edit.otio").decisions}
    assert not after[victim.shot_id].media.endswith("colors.mp4")
    assert res.cut == 2 and _frames_ok(project, out)
    capsys.readouterr()  # going back to the cut that used it: one clear error, nothing changed
    assert main(["revert", str(project), "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"shot {victim.shot_id}" in err and "colors.mp4" in err
    assert "Traceback" not in err and load_state(project).cut == 2 and _frames_ok(project, out)


def test_a_source_replaced_by_a_shorter_file_is_chosen_anew(made, capsys):
    lib, script, project, out = made
    before = {d.shot_id: d for d in read_timeline(project / "edit.otio").decisions}
    victim = next(d for d in before.values() if d.media.endswith("colors.mp4"))
    make_cut_clip(lib / "colors.mp4", ["red"], seconds=0.5)
    capsys.readouterr()
    res = Recutter(lib, project, OPTIONS).cut(script, out)
    err = capsys.readouterr().err
    assert f"shot {victim.shot_id}" in err and "replaced" in err
    assert res.cut == 2 and _frames_ok(project, out)
