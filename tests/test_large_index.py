"""`montage index --vectors large`: the footage index on the large vector index
(retrieval.index.largevectors) keeps a stable row per shot, appends new files, tombstones removed
ones, compacts, and survives a SIGKILL mid-append; on a small real library it finds what the
exact index finds."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from montage.cli import main
from planner.errors import LibraryError
from retrieval import build_index, open_index
from retrieval.index.largevectors import LargeVectorIndex
from retrieval.index.store import DB_NAME
from tests.conftest import make_clip, make_cut_clip, make_still

COLOURS = ["red", "green", "blue", "yellow", "white", "black", "orange"]
QUERIES = ["red", "a green field", "blue sky", "a test pattern", "white light", "yellow"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path / "cache"))


def _library(root: Path, n_clips: int) -> Path:
    for i in range(n_clips):  # numbered names: no footage words, so no text model to load
        make_cut_clip(root / f"{i:02d}.mp4", COLOURS[i : i + 2], size="48x48")
    make_still(root / "card.png", size="48x48")
    make_clip(root / "pattern.mp4", duration=1.0, size="48x48")
    return root


def _rows(root: Path) -> dict[str, int]:
    with closing(sqlite3.connect(root / ".montage" / DB_NAME)) as con:
        return dict(con.execute("SELECT id, row FROM shots"))


def _exact_vectors(root: Path, proxy, scratch: Path) -> dict[str, np.ndarray]:
    """Each shot's vector as an exact index of a copy of the library holds it."""
    copy = scratch / f"exact-{len(list(scratch.glob('exact-*')))}"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".montage"))
    build_index(copy, proxy, progress=False, workers=0, vectors="exact")
    index = open_index(copy)
    return {s.id: v for s, v in zip(index.shots, index.vectors.vectors())}


def _consistent(root: Path, proxy=None, scratch: Path | None = None) -> dict[str, int]:
    """Every stored shot has a live row and no other row is live; with ``scratch``, each row
    also holds its own shot's vector (checked against an exact index of a copy)."""
    index = open_index(root)
    assert isinstance(index.vectors, LargeVectorIndex) and index.meta["vector_index"] == "ivfpq"
    rows = _rows(root)
    assert sorted(rows.values()) == index.vectors.live_ids().tolist()
    assert len(index.vectors) == len(rows) == index.meta["rows"] == len(index.shots)
    if scratch is not None:
        same = proxy.name == index.embedder_name  # the command line's default is another proxy
        exact = _exact_vectors(root, proxy if same else index.embedder_name, scratch)
        assert set(exact) == set(rows)
        for shot_id, row in rows.items():
            assert np.allclose(index.vectors.rows([row])[0], exact[shot_id], atol=2e-3), shot_id
    return rows


def test_a_small_library_forced_large_finds_what_the_exact_index_finds(tmp_path, proxy) -> None:
    root = _library(tmp_path / "lib", 4)
    build_index(root, proxy, progress=False, workers=0, vectors="exact")
    exact = open_index(root)
    assert exact.meta["vector_index"] == "flat"
    want = exact.search(QUERIES, 5)
    build_index(root, proxy, progress=False, workers=0, vectors="large")  # converts, nothing re-analysed
    large = open_index(root)
    assert large.meta["vector_index"] == "ivfpq" and len(large) == len(exact)
    got = large.search(QUERIES, 5)
    for a, b in zip(want, got):
        assert [h.shot.id for h in a] == [h.shot.id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=2e-3)
    for mode in ("embedding", "cascade"):
        assert [[h.shot.id for h in q] for q in large.search(QUERIES, 3, mode=mode)] == \
            [[h.shot.id for h in q] for q in exact.search(QUERIES, 3, mode=mode)]
    left = sorted(p.name for p in (root / ".montage").iterdir())
    assert left == sorted([DB_NAME, "index.lock", "keyframes", large.meta["vectors"].split("/")[0],
                           large.meta["calibration"]]), left
    build_index(root, proxy, progress=False, workers=0, vectors="exact")  # and back
    back = open_index(root)
    assert back.meta["vector_index"] == "flat"
    assert [[h.shot.id for h in q] for q in back.search(QUERIES, 5)] == \
        [[h.shot.id for h in q] for q in want]


@pytest.mark.slow  # several seconds; CI runs it with make test-slow
def test_commits_that_add_and_remove_files_keep_rows_stable(tmp_path, proxy) -> None:
    root = _library(tmp_path / "lib", 5)
    build_index(root, proxy, progress=False, workers=0, vectors="large")
    first = _consistent(root)
    stored = open_index(root).vectors
    vectors = dict(zip(first, stored.rows(list(first.values()))))
    (root / "01.mp4").unlink()  # removed: its shots become tombstones
    make_cut_clip(root / "03.mp4", ["black", "white"], size="48x48")  # changed
    make_cut_clip(root / "new" / "09.mp4", ["orange", "blue"], size="48x48")  # added
    report = build_index(root, proxy, progress=False, workers=0, vectors="large")
    assert (report.files_indexed, report.files_reused) == (2, 5)
    second = _consistent(root)
    large = open_index(root).vectors
    for shot_id, row in second.items():  # the unchanged files' shots kept their rows
        if not shot_id.startswith(("01.mp4", "03.mp4", "new/")):
            assert first[shot_id] == row
            assert np.array_equal(large.rows([row])[0], vectors[shot_id])
        else:
            assert row >= len(first)  # appended after every earlier row
    assert large.appended == len(first) + 4 and len(large) == len(first)
    found = {h.shot.id for q in open_index(root).search(QUERIES + ["black", "orange"], 10)
             for h in q}
    assert found <= set(second) and "new/09.mp4#0" in found and "01.mp4#0" not in found
    # a keyword search that matches few shots is filled with live rows, not row numbers 0..n-1
    # (tombstones among them, appended rows past them): as many hits as asked, when there are
    [filled] = open_index(root).search(["orange"], top=len(second), mode="keywords")
    assert sorted(h.shot.id for h in filled) == sorted(second)
    # removing past a quarter of the rows compacts them: rows 0..n-1 again, each its own vector
    for name in ("00.mp4", "02.mp4", "04.mp4"):
        (root / name).unlink()
    build_index(root, proxy, progress=False, workers=0, vectors="large")
    third = _consistent(root, proxy, tmp_path)
    assert sorted(third.values()) == list(range(len(third)))
    assert open_index(root).vectors.appended == len(third)
    assert len(list((root / ".montage").glob("large-*"))) == 1


def test_auto_picks_the_exact_index_for_a_small_library(tmp_path, proxy) -> None:
    root = _library(tmp_path / "lib", 1)
    build_index(root, proxy, progress=False, workers=0)
    assert open_index(root).meta["vector_index"] == "flat"
    with pytest.raises(LibraryError, match="unknown vector index"):
        build_index(root, proxy, progress=False, workers=0, vectors="huge")


# `montage index --vectors large` as the console script runs it, killed with SIGKILL inside
# the large index's commit: after the new rows and codes are written, before the manifest that
# would name them (and the SQLite transaction after it).
_KILLED_MID_APPEND = """
import os, signal, sys
import retrieval.index.largevectors as large
_commit = large.LargeVectorIndex.commit
def commit(self, name=large.MANIFEST):
    if name.startswith("manifest-") and self._manifest["rows"] > int(os.environ["ROWS_BEFORE"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return _commit(self, name)
large.LargeVectorIndex.commit = commit
from montage.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a subprocess that loads the command line's models: minutes on 2 busy cores
def test_a_sigkill_mid_append_leaves_a_usable_index(tmp_path, proxy, model_cache,
                                                    monkeypatch, capsys) -> None:
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(model_cache))
    root = _library(tmp_path / "lib", 3)
    assert main(["index", str(root), "--quiet", "--workers", "0", "--vectors", "large"]) == 0
    before = _rows(root)
    searched = [[h.shot.id for h in q] for q in open_index(root).search(QUERIES, 3)]
    make_cut_clip(root / "new" / "08.mp4", ["orange", "black"], size="48x48")
    (root / "00.mp4").unlink()
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_APPEND, "index", str(root), "--quiet", "--workers",
         "0", "--vectors", "large"], capture_output=True, text=True,
        env={**os.environ, "ROWS_BEFORE": str(len(before))},
        cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = root / ".montage"
    (large_folder,) = folder.glob("large-*")
    assert (large_folder / "rows.f16").stat().st_size > len(before) * 2 * open_index(root).vectors.dim
    assert _rows(root) == before  # the previous state, whole
    assert [[h.shot.id for h in q] for q in open_index(root).search(QUERIES, 3)] == searched
    capsys.readouterr()
    assert main(["index", str(root), "--quiet", "--workers", "0", "--vectors", "large"]) == 0
    assert "indexed 1 files" in capsys.readouterr().out
    after = _consistent(root, proxy, tmp_path)
    assert {i for i in after if i.startswith("new/")} == {"new/08.mp4#0", "new/08.mp4#1"}
    assert not any(i.startswith("00.mp4") for i in after)
    assert len(list(large_folder.glob("manifest-*.json"))) == 1
