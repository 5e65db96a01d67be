"""`montage make` with no model flags: it says which embedder and generator it took and how
to get better ones, takes pulled models (a tiny CLIP and a tiny diffusion pipeline from the
loopback hub) without being told, keeps a project's models across recuts, and asks nothing of
the network offline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from montage.cli import main
from retrieval.models import entry, status
from tests.conftest import make_cut_clip, make_still

SCRIPT = "A red wall in the sun.\n\nA blue door at night. A green field.\n"


def _library(folder: Path) -> Path:
    make_cut_clip(folder / "walls.mp4", ["red", "blue"])
    make_still(folder / "field.png", source="rgbtestsrc")
    return folder


def _make(tmp_path: Path, capsys, *extra: str) -> tuple[int, str, dict]:
    script = tmp_path / "story.txt"
    script.write_text(SCRIPT)
    out = tmp_path / "out" / "film.mp4"
    code = main(["make", str(script), "--library", str(tmp_path / "lib"), "--out", str(out),
                 "--size", "64x36", *extra])
    err = capsys.readouterr().err
    state_file = tmp_path / "out" / "film.montage" / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return code, err, state


def test_offline_with_nothing_pulled_make_says_what_it_used_and_what_to_pull(tmp_path,
                                                                            capsys) -> None:
    _library(tmp_path / "lib")
    code, err, state = _make(tmp_path, capsys)
    assert code == 0, err
    assert ("retrieval: proxy-v4 (offline, no CLIP installed); `montage models pull "
            "clip-vit-b32` for CLIP") in err
    assert ("generation: standin (fills made from the library's own frames, measured like "
            "footage); `montage models pull lcm-dreamshaper-v7` for generated shots") in err
    assert state["embedder"] == "proxy-v4" and state["settings"]["generator"] == "standin"


def test_make_takes_the_pulled_tiny_clip_and_generator_and_keeps_them(hub, tmp_path,
                                                                     capsys, monkeypatch) -> None:
    _library(tmp_path / "lib")
    for name in ("tiny-clip", "tiny-sd"):
        assert main(["models", "pull", name, "--quiet"]) == 0
    clip = status(entry("tiny-clip")).installed
    hub.log.clear()
    code, err, state = _make(tmp_path, capsys)
    assert code == 0, err
    assert hub.log == []  # models are found on the disk: the run asks nothing of the hub
    assert f"retrieval: tiny-clip@{clip.short}" in err
    assert f"generation: tiny-sd@{status(entry('tiny-sd')).installed.short}" in err
    assert state["embedder"] == f"tiny-clip@{clip.short}" and state["settings"]["generator"] == "tiny-sd"
    report = (tmp_path / "out" / "film.montage" / "report.md").read_text()
    assert "generated" in report  # the tiny CLIP matches nothing: shots are generated
    assert (tmp_path / "out" / "film.mp4").stat().st_size > 0

    # offline, a recut finds everything on the disk: not one request to the hub
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "story.txt").write_text(SCRIPT + "\nA red wall again.\n")
    code, err, state = _make(tmp_path, capsys)
    assert code == 0, err
    assert hub.log == []
    assert "(this project's" in err and state["embedder"] == f"tiny-clip@{clip.short}"

    # the project's CLIP removed: said loudly, and the cut goes on with what is installed,
    # its keyframes re-embedded by the proxy (the index kept them: no video decoded again)
    assert main(["models", "remove", "tiny-clip"]) == 0
    code, err, state = _make(tmp_path, capsys)
    assert code == 0, err
    assert f"warning: this project was cut with tiny-clip@{clip.short}" in err
    assert "not installed" in err and state["embedder"] == "proxy-v4"


def test_an_index_made_by_a_model_no_longer_installed_says_so(hub, tmp_path) -> None:
    from planner.errors import ModelError
    from retrieval import build_index, open_index

    lib = _library(tmp_path / "lib")
    assert main(["models", "pull", "tiny-clip", "--quiet"]) == 0
    build_index(lib, "tiny-clip", progress=False, workers=0)
    assert main(["models", "remove", "tiny-clip"]) == 0
    index = open_index(lib)
    with pytest.raises(ModelError) as err:
        index.search(["a red wall"], 1)
    assert "the index was made by tiny-clip@" in err.value.message
    assert "montage models pull tiny-clip" in err.value.hint


def test_a_project_cut_with_several_generators_keeps_them(tmp_path) -> None:
    """The demo cuts with "standin,builtin": a recut without flags (the studio, watch) keeps
    that spec, and does not call it unusable."""
    from montage.pipeline import MakeOptions
    from montage.pipeline.choose import choose_models
    from montage.project import Settings

    stored = Settings(generator="standin,builtin", generator_model="standin-1, builtin-4")
    chosen, lines = choose_models(MakeOptions(given=frozenset()), stored)
    assert chosen.generator == "standin,builtin"
    assert not any("cannot be used" in line for line in lines), lines
