"""The large-library vector index (IVF-PQ in memory, rows on disk) on small real data."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.index.largevectors import MANIFEST, ROWS, TRAINED, LargeVectorIndex
from retrieval.index.vectors import VectorIndex

DIM = 96


def _clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 50 shared centres (real embeddings cluster; uniform noise does not)."""
    centres = np.random.default_rng(99).normal(size=(50, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(50, size=n)] + 0.5 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recall(truth: np.ndarray, found: np.ndarray) -> float:
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found)]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """An index trained (k-means: seconds on a busy machine) once for the module's tests."""
    folder = tmp_path_factory.mktemp("trained") / "large"
    LargeVectorIndex.create(folder, _clustered(3000, 1), nlist=64, pq_m=24)
    return folder


@pytest.fixture
def built(tmp_path, trained):
    first, second = _clustered(3000, 1), _clustered(2000, 2)
    shutil.copytree(trained, tmp_path / "large")
    index = LargeVectorIndex.open(tmp_path / "large")
    assert index.append(first) == range(0, 3000)
    return tmp_path / "large", index, np.concatenate([first, second]), second


def test_appends_write_only_what_is_new_and_search_matches_exact(built) -> None:
    folder, index, everything, second = built
    trained = (folder / TRAINED).stat().st_mtime_ns
    seg1 = (folder / "seg-000000000000.codes").read_bytes()
    assert index.append(second) == range(3000, 5000)
    # the trained index and the first segment are untouched; the rows file only grew
    assert (folder / TRAINED).stat().st_mtime_ns == trained
    assert (folder / "seg-000000000000.codes").read_bytes() == seg1
    assert (folder / ROWS).stat().st_size == 5000 * DIM * 2
    assert len(index) == 5000
    queries = _clustered(100, 3)
    _, truth = VectorIndex(DIM, everything, kind="flat").search(queries, 10)
    scores, found = index.search(queries, 10)
    assert _recall(truth, found) >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    exact = np.einsum("qd,qkd->qk", queries, everything[found])
    assert np.allclose(scores, exact, atol=2e-3)  # re-scored from the fp16 rows
    again = LargeVectorIndex.open(folder)
    assert np.array_equal(again.search(queries, 10)[1], found)
    assert np.allclose(again.rows([4999, 7]), everything[[4999, 7]], atol=2e-3)


def test_removed_rows_are_never_returned(built) -> None:
    folder, index, everything, second = built
    queries = _clustered(20, 4)
    _, before = index.search(queries, 5)
    gone = set(before[:, 0].tolist())
    index.remove(gone)
    _, after = index.search(queries, 5)
    assert not gone & set(after.ravel().tolist())
    assert len(LargeVectorIndex.open(folder)) == 3000 - len(gone)


def test_a_crash_mid_append_leaves_the_previous_state(built) -> None:
    folder, index, everything, second = built
    with open(folder / ROWS, "ab") as fh:  # rows written, manifest not: the append died
        fh.write(second[:100].astype(np.float16).tobytes())
    manifest = (folder / MANIFEST).read_text()
    reopened = LargeVectorIndex.open(folder)
    assert len(reopened) == 3000 and (folder / MANIFEST).read_text() == manifest
    assert reopened.append(second) == range(3000, 5000)  # the stray bytes are overwritten
    assert np.allclose(reopened.rows([3000]), second[:1], atol=2e-3)
    assert (folder / ROWS).stat().st_size == 5000 * DIM * 2


def test_training_needs_a_sample_per_cell(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs at least 64 sample rows"):
        LargeVectorIndex.create(tmp_path, _clustered(10, 1), nlist=64, pq_m=24)


def test_compaction_keeps_the_live_rows_in_order(built, tmp_path) -> None:
    from retrieval.index.largevectors import compact

    folder, index, everything, second = built
    index.remove(range(0, 3000, 3))
    fresh, live = compact(tmp_path, index)
    fresh.commit()
    assert live.tolist() == [i for i in range(3000) if i % 3] and len(fresh) == len(live)
    assert fresh.appended == len(live) and fresh.removed_share == 0
    assert np.allclose(fresh.rows([0, 1, len(live) - 1]), everything[[1, 2, 2999]], atol=2e-3)
    queries = _clustered(20, 5)
    _, old_ids = index.search(queries, 5)
    _, new_ids = fresh.search(queries, 5)
    assert np.array_equal(live[new_ids], old_ids)  # the same rows, renumbered
    assert (fresh.folder / TRAINED).read_bytes() == (folder / TRAINED).read_bytes()


def test_a_tiny_sample_trains_fewer_cells_and_shorter_codes(tmp_path) -> None:
    rows = _clustered(20, 6)
    index = LargeVectorIndex.create(tmp_path, rows)
    index.append(rows)
    scores, ids = index.search(rows[:3], 20)
    assert ids[:, 0].tolist() == [0, 1, 2]  # every row is re-scored: exact for a small set
    assert np.all(np.diff(scores, axis=1) <= 1e-6) and sorted(ids[0]) == list(range(20))


def test_the_kind_follows_the_mode_and_the_size() -> None:
    from retrieval.index.largevectors import LARGE_MIN, choose_kind

    assert choose_kind("auto", LARGE_MIN, None) == "exact"
    assert choose_kind("auto", LARGE_MIN + 1, "hnsw") == "large"
    assert choose_kind("auto", LARGE_MIN // 2, "ivfpq") == "large"  # no flapping at the edge
    assert choose_kind("auto", LARGE_MIN // 2 - 1, "ivfpq") == "exact"
    assert choose_kind("large", 3, None) == "large" and choose_kind("exact", 10**7, "ivfpq") == "exact"


def test_an_index_that_outgrew_its_cells_is_trained_anew(tmp_path) -> None:
    from retrieval.index.largevectors import compact, outgrown

    small = _clustered(64, 7)
    index = LargeVectorIndex.create(tmp_path / "a", small)  # one cell: 64 rows, 40 a cell
    assert index._manifest["nlist"] == 1 and not outgrown(index)
    rows = _clustered(3000, 8)
    index.append(rows)
    assert outgrown(index)  # 3000 rows ask for 64 cells
    fresh, live = compact(tmp_path, index, retrain=True)
    fresh.commit()
    assert fresh._manifest["nlist"] == 64 and not outgrown(fresh) and len(fresh) == 3000
    assert live.tolist() == list(range(3000))
    assert np.allclose(fresh.rows([0, 2999]), rows[[0, 2999]], atol=2e-3)
    queries = _clustered(50, 9)
    _, truth = VectorIndex(DIM, rows, kind="flat").search(queries, 10)
    assert _recall(truth, fresh.search(queries, 10)[1]) >= 0.9
