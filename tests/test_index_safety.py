"""The index under stress: old formats, interruptions, read-only libraries, worker processes."""
from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from planner.errors import LibraryError
from retrieval import build_index, open_index, search_library
from retrieval.location import READONLY_ENV, cache_index_dir, is_writable
from retrieval.proxy import ProxyEmbedder
from tests.conftest import make_clip, make_cut_clip, make_still


@pytest.fixture(scope="module")
def proxy(pytestconfig) -> ProxyEmbedder:
    return ProxyEmbedder(cache_dir=pytestconfig.cache.mkdir("montage-models"), threads=1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Indexes of read-only libraries go to a per-test cache, never the user's."""
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(READONLY_ENV, raising=False)


def _library(root: Path, n_clips: int = 3) -> Path:
    colours = ["red", "green", "blue", "yellow", "white"]
    for i in range(n_clips):
        make_cut_clip(root / f"clip{i}.mp4", [colours[i], colours[i + 1]], size="48x48")
    make_still(root / "card.png", size="48x48")  # square: the proxy classifies one crop, not 4
    return root


def _legacy_index(root: Path) -> None:
    """What montage 0.1 left beside a library: index.json (format 1) and a vectors file."""
    folder = root / ".montage"
    folder.mkdir()
    (folder / "index.json").write_text(json.dumps({"version": 1, "embedder": "proxy-v2",
                                                   "files": {}, "vectors": "vectors-old.faiss"}))
    (folder / "vectors-old.faiss").write_bytes(b"old")


def test_an_index_of_the_previous_format_is_refused_for_search(tmp_path) -> None:
    make_still(tmp_path / "a.png")
    _legacy_index(tmp_path)
    with pytest.raises(LibraryError) as err:
        open_index(tmp_path)
    assert "older montage" in err.value.message and "format 1" in err.value.message
    assert "montage index" in err.value.hint


def test_an_index_of_the_previous_format_is_rebuilt_when_indexing(tmp_path, proxy, caplog) -> None:
    make_still(tmp_path / "a.png")
    _legacy_index(tmp_path)
    caplog.set_level(logging.WARNING)
    report = build_index(tmp_path, proxy, progress=False, workers=0)
    assert report.files_indexed == 1
    assert any("format 1" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / ".montage" / "index.json").exists()
    assert not (tmp_path / ".montage" / "vectors-old.faiss").exists()
    assert len(open_index(tmp_path).shots) == 1


def test_interrupted_run_keeps_finished_files_and_resumes(tmp_path, proxy, monkeypatch) -> None:
    import retrieval.index as index_module

    monkeypatch.setattr(index_module, "EMBED_BATCH", 1)  # each file embedded as it comes
    root = _library(tmp_path / "lib")
    finished: list[str] = []

    def stop_after_two(path: str, done: int, total: int) -> None:
        finished.append(path)
        if done == 2:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run

    with pytest.raises(KeyboardInterrupt):
        build_index(root, proxy, progress=False, workers=0, on_file=stop_after_two)
    assert len(finished) == 2
    partial = open_index(root)  # a usable index of what was finished
    assert sorted({s.path for s in partial.shots}) == sorted(finished)
    assert partial.search(["red"], 1)[0]
    resumed = build_index(root, proxy, progress=False, workers=0)
    assert (resumed.files_indexed, resumed.files_reused) == (2, 2)
    assert len({s.path for s in open_index(root).shots}) == 4


def test_checkpoints_commit_during_a_run(tmp_path, proxy, monkeypatch) -> None:
    import retrieval.index as index_module

    root = _library(tmp_path / "lib", n_clips=2)
    monkeypatch.setattr(index_module, "EMBED_BATCH", 1)  # embed each file as it comes
    seen: list[int] = []

    def count_committed(path: str, done: int, total: int) -> None:
        try:
            seen.append(len(open_index(root).shots))
        except LibraryError:  # nothing committed yet
            seen.append(0)

    build_index(root, proxy, progress=False, workers=0, checkpoint_s=0.0, on_file=count_committed)
    assert seen[0] == 0 and seen[1] > 0 and seen == sorted(seen)  # searchable mid-run
    assert len(open_index(root).shots) == 5


def test_read_only_library_is_indexed_into_the_user_cache(tmp_path, proxy, monkeypatch) -> None:
    root = _library(tmp_path / "lib", n_clips=1)
    if os.geteuid() == 0:  # root writes through chmod: use the documented switch instead
        monkeypatch.setenv(READONLY_ENV, "1")
    mode = root.stat().st_mode
    root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert not is_writable(root)
        report = build_index(root, proxy, progress=False, workers=0)
        assert report.files_indexed == 2 and Path(report.location) == cache_index_dir(root)
        assert not (root / ".montage").exists()
        assert search_library(root, ["a red picture"], top=1)[0]
        assert build_index(root, proxy, progress=False).files_reused == 2  # warm, from the cache
    finally:
        root.chmod(mode)
    assert str(tmp_path / "cache") in str(cache_index_dir(root))


def test_worker_processes_give_the_same_index(tmp_path, proxy) -> None:
    one = _library(tmp_path / "one", n_clips=2)
    two = _library(tmp_path / "two", n_clips=2)
    (two / "broken.mp4").write_bytes(b"\x00" * 500)
    serial = build_index(one, proxy, progress=False, workers=0)
    parallel = build_index(two, proxy, progress=False, workers=1)
    assert (parallel.files_indexed, serial.files_indexed) == (3, 3)
    assert [p for p, _ in parallel.files_skipped] == ["broken.mp4"]
    a, b = open_index(one), open_index(two)
    assert [s.id for s in a.shots] == [s.id for s in b.shots]
    assert [s.features for s in a.shots] == [s.features for s in b.shots]
    assert np.allclose(a.vectors.vectors(), b.vectors.vectors(), atol=1e-5)


def test_new_files_are_added_without_touching_the_others(tmp_path, proxy) -> None:
    root = _library(tmp_path / "lib", n_clips=1)
    build_index(root, proxy, progress=False, workers=0)
    before = {s.id: s for s in open_index(root).shots}
    make_clip(root / "new" / "extra.mp4", duration=1.0, size="48x48")
    report = build_index(root, proxy, progress=False, workers=0)
    assert (report.files_indexed, report.files_reused) == (1, 2)
    after = {s.id: s for s in open_index(root).shots}
    assert set(after) == set(before) | {"new/extra.mp4#0"}
    assert all(after[k] == v for k, v in before.items())
