"""Indexing a library again with another embedder re-embeds the keyframes the index kept: no
video is decoded, the vectors equal those of a fresh index made by decoding, each embedder's
vectors are kept (switching back is free), and a changed file is the only one decoded."""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from retrieval import build_index, open_index
from retrieval.embed.clip import ClipEmbedder
from retrieval.index.sets import embedder_dir
from tests.conftest import make_cut_clip, make_still
from tests.models_kit import build_tiny_clip


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "model")


def _clip(folder) -> ClipEmbedder:
    return ClipEmbedder.from_installed("tiny-local@test", folder, vocabulary=("red", "blue"))


@pytest.fixture
def decodes(monkeypatch) -> Counter:
    """Calls of retrieval.media's decoding entry points (the real ones run; they are counted)."""
    import retrieval.analysis.scan as scan
    import retrieval.media.decode as decode

    calls: Counter = Counter()

    def counted(name, real):
        def spy(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return spy

    for name in ("decode_video", "read_still", "read_frames", "probe"):
        monkeypatch.setattr(decode, name, counted(name, getattr(decode, name)))
    monkeypatch.setattr(scan, "decode_video", counted("decode_video", scan.decode_video))
    return calls


def _library(folder):
    make_cut_clip(folder / "cuts.mp4", ["red", "blue", "green"])
    make_still(folder / "still.png")
    return folder


def _by_shot(index) -> dict:
    return {s.id: (s.labels, v) for s, v in zip(index.shots, index.vectors.vectors())}


def test_another_embedder_re_embeds_stored_keyframes_without_decoding(tmp_path, proxy,
                                                                       clip_folder,
                                                                       decodes) -> None:
    lib = _library(tmp_path / "lib")
    fresh_lib = tmp_path / "fresh"
    shutil.copytree(lib, fresh_lib)
    first = build_index(lib, proxy, progress=False, workers=0)
    assert first.files_indexed == 2 and decodes["decode_video"] == 1 and decodes["read_still"] == 1
    calibrated = open_index(lib).meta["calibration"]  # what scores mean in this library
    decodes.clear()

    clip = _clip(clip_folder)
    again = build_index(lib, clip, progress=False, workers=0)
    assert sum(decodes.values()) == 0, decodes  # no video (or still) opened
    assert (again.files_indexed, again.files_reembedded, again.parked) == (2, 2, proxy.name)
    # the new vectors get their own calibration; the parked set keeps its own beside it
    assert open_index(lib).meta["calibration"] not in (None, calibrated)
    assert (embedder_dir(lib / ".montage", proxy.name) / calibrated).is_file()

    # the same vectors (and labels) a fresh index decoding the same files gets
    build_index(fresh_lib, _clip(clip_folder), progress=False, workers=0)
    switched, fresh = _by_shot(open_index(lib)), _by_shot(open_index(fresh_lib))
    assert switched.keys() == fresh.keys() and len(switched) == 4
    for shot_id, (labels, vector) in switched.items():
        assert labels == fresh[shot_id][0]
        assert np.allclose(vector, fresh[shot_id][1], atol=1e-6), shot_id

    # switching back is free: the first embedder's vectors were kept
    decodes.clear()
    back = build_index(lib, proxy, progress=False, workers=0)
    assert (back.files_indexed, back.files_reused, back.parked) == (0, 2, clip.name)
    assert sum(decodes.values()) == 0
    assert open_index(lib).embedder_name == proxy.name
    assert open_index(lib).meta["calibration"] == calibrated and (lib / ".montage" / calibrated).is_file()
    # either set can be searched; vectors of different embedders never meet in one search
    assert open_index(lib, clip).search(["red"], 1, clip)[0]
    assert open_index(lib, proxy).search(["red"], 1)[0]


def test_a_changed_file_is_the_only_one_decoded_on_a_switch(tmp_path, proxy, clip_folder,
                                                            decodes) -> None:
    lib = _library(tmp_path / "lib")
    build_index(lib, proxy, progress=False, workers=0)
    make_still(lib / "still.png", source="smptebars")  # new content, same name
    decodes.clear()
    report = build_index(lib, _clip(clip_folder), progress=False, workers=0)
    assert (report.files_indexed, report.files_reembedded) == (2, 1)
    assert decodes["read_still"] == 1 and decodes["decode_video"] == 0
    kept = sorted(p.name for p in (lib / ".montage" / "keyframes").iterdir())
    assert len(kept) == 2  # the old still's keyframes are gone with it


def test_search_names_the_sets_an_index_has(tmp_path, proxy, clip_folder) -> None:
    from planner.errors import LibraryError

    lib = _library(tmp_path / "lib")
    build_index(lib, proxy, progress=False, workers=0)
    with pytest.raises(LibraryError) as err:
        open_index(lib, _clip(clip_folder))
    assert "no vectors made by tiny-local@test" in err.value.message
    assert f"{proxy.name} (current)" in err.value.message
    assert "--embedder" in err.value.hint and "no video is decoded" in err.value.hint
