"""The library's calibration (retrieval.index.calibration): computed at index time, updated
incrementally as files come and go (equal to computing it afresh), on the exact and the large
vector index; a search reads it (each query's mean and sd over every shot, exactly) and an
unchanged library costs nothing; an index without one says what to run and gets one."""
from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from planner.errors import LibraryError
from planner.shots import PlannedShot, ShotPlan
from retrieval import build_index, candidates_for_plan, open_index
from retrieval.index import calibration
from retrieval.index.probes import PROBES, QUERIES
from retrieval.index.store import DB_NAME
from retrieval.types import CandidateSet
from tests.conftest import make_clip, make_cut_clip, make_still

COLOURS = ["red", "green", "blue", "yellow", "white", "black", "orange", "navy"]


@pytest.fixture(autouse=True)
def _probe_cache(pytestconfig, monkeypatch):
    """Probe vectors cached once for the module's tests (not in the user's cache)."""
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(pytestconfig.cache.mkdir("montage-calibration")))


def _library(root: Path, n: int) -> Path:
    for i in range(n):  # numbered names: no footage words
        make_cut_clip(root / f"{i:02d}.mp4", COLOURS[i % 8 : i % 8 + 2], size="48x48")
    make_still(root / "card.png", size="48x48")
    make_clip(root / "pattern.mp4", duration=1.0, size="48x48")
    return root


def _every_row(index) -> np.ndarray:
    v = index.vectors
    return v.rows(v.live_ids()) if hasattr(v, "live_ids") else v.vectors()


def _matches_its_vectors(root: Path) -> calibration.LibraryCalibration:
    """The stored calibration equals one computed afresh from the index's own vectors."""
    index = open_index(root)
    cal = calibration.load(index.folder, index.meta)
    rows = _every_row(index).astype(np.float64)
    assert cal.n == len(rows) == index.meta["rows"]
    assert np.allclose(cal.s1, rows.sum(axis=0), atol=1e-6)
    assert np.allclose(cal.s2, rows.T @ rows, atol=1e-6)
    best = (cal.probes.astype(np.float64) @ rows.T).max(axis=1)
    assert np.allclose(cal.probe_top, best, atol=3e-3)  # fp16 rows of a large index: 1e-3
    light = index.calibration()  # what a search reads: the same, in float32
    assert (light.unrelated, light.unrelated_sd) == pytest.approx(cal.unrelated)
    assert np.allclose(light.cov, cal.s2 / cal.n - np.outer(cal.s1, cal.s1) / cal.n ** 2,
                       atol=1e-6)
    return cal


def test_the_probes_are_the_queries_the_planner_makes_of_them():
    from planner.plan import plan_text

    assert len(set(QUERIES)) == len(QUERIES) >= 150
    for sentence, query in PROBES:
        assert " ".join(s.query.strip() or s.text for s in plan_text(sentence).shots) == query


def test_each_query_reads_its_mean_and_sd_over_the_library_from_the_sums():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(300, 24)).astype(np.float32)
    queries = rng.normal(size=(5, 24)).astype(np.float32)
    probes = rng.normal(size=(40, 24)).astype(np.float32)
    cal = calibration.from_vectors("e", [rows[:100], rows[100:]], 24, probes)
    cal = cal.with_probe_tops(lambda q, k: ((q @ rows.T).max(axis=1, keepdims=True), None), "v")
    mean, sd = cal.stats(queries)
    assert np.allclose(mean, (queries @ rows.T).mean(axis=1), atol=1e-9)
    assert np.allclose(sd, (queries @ rows.T).std(axis=1), atol=1e-9)
    # incremental: 50 rows out and 30 in is the calibration of the rows that are left
    later = cal.updated(rows[:30] * 2, rows[250:])
    rest = np.concatenate([rows[:250], rows[:30] * 2])
    assert later.n == 280 and np.allclose(later.s2, rest.astype(np.float64).T @ rest, atol=1e-6)
    z = (cal.probe_top - (probes @ rows.T).mean(axis=1)) / (probes @ rows.T).std(axis=1)
    middle, spread = cal.unrelated
    assert middle == pytest.approx(float(np.median(z)))
    assert spread == pytest.approx(1.4826 * float(np.median(np.abs(z - np.median(z)))))
    q = cal.for_queries(queries[:1])[0]
    assert (q.unrelated, q.unrelated_sd, q.shots) == (round(middle, 4), round(spread, 4), 300)
    assert q.confidence(q.raw(2.5)) == pytest.approx(2.5)


@pytest.mark.parametrize("vectors", ["exact", "large"])
def test_the_calibration_follows_the_library_file_by_file(tmp_path, proxy, vectors) -> None:
    root = _library(tmp_path / "lib", 4)
    build_index(root, proxy, progress=False, workers=0, vectors=vectors)
    first = _matches_its_vectors(root)
    make_cut_clip(root / "10.mp4", ["navy", "white", "red"], size="48x48")  # a file comes
    build_index(root, proxy, progress=False, workers=0, vectors=vectors)
    grown = _matches_its_vectors(root)
    assert grown.n == first.n + 3
    (root / "01.mp4").unlink()  # one goes
    make_cut_clip(root / "02.mp4", ["yellow", "black"], seconds=1.5, size="48x48")  # one changes
    build_index(root, proxy, progress=False, workers=0, vectors=vectors)
    _matches_its_vectors(root)
    files = sorted(p.name for p in (root / ".montage").glob("*calibration-*"))
    assert files == [open_index(root).meta["calibration"]]  # the old ones are gone


def test_a_search_reads_the_calibration_and_an_unchanged_library_costs_nothing(
        tmp_path, proxy, monkeypatch) -> None:
    root = _library(tmp_path / "lib", 3)
    build_index(root, proxy, progress=False, workers=0)
    name = open_index(root).meta["calibration"]
    stamp = (root / ".montage" / name).stat().st_mtime_ns

    def no(*args, **kwargs):
        raise AssertionError("an unchanged library embedded the probes again")

    monkeypatch.setattr(calibration, "probe_vectors", no)
    build_index(root, proxy, progress=False, workers=0)  # nothing changed: nothing computed
    index = open_index(root)
    assert index.meta["calibration"] == name
    assert (root / ".montage" / name).stat().st_mtime_ns == stamp
    plan = ShotPlan(source="t", shots=tuple(
        PlannedShot(id=f"s{i}", scene=0, text=q, query=q, characters=(), duration=2.0, line=i)
        for i, q in enumerate(["a red field", "green", "a test pattern"])))
    cands = candidates_for_plan(index, plan, top=4)
    vectors = index.vectors.vectors()
    for c, q in zip(cands.shots, index.embedder(proxy).embed_queries([s.query for s in plan.shots])):
        scores = vectors @ q
        assert c.calibration.mean == pytest.approx(float(scores.mean()), abs=1e-5)
        assert c.calibration.sd == pytest.approx(float(scores.std()), abs=1e-5)
        top = c.hits[0]
        assert c.calibration.confidence(top.score) == pytest.approx(
            (top.score - scores.mean()) / scores.std(), abs=1e-3)
    again = CandidateSet.from_json(cands.to_json())  # candidates.json keeps it
    assert again == cands
    old = cands.to_json().replace('"calibration"', '"was"')  # before calibration: None
    assert all(c.calibration is None for c in CandidateSet.from_json(old).shots)


def test_an_index_without_calibration_says_what_to_run_and_indexing_adds_it(tmp_path, proxy):
    root = _library(tmp_path / "lib", 2)
    build_index(root, proxy, progress=False, workers=0)
    with closing(sqlite3.connect(root / ".montage" / DB_NAME)) as con, con:
        con.execute("DELETE FROM meta WHERE key = 'calibration'")  # as an older montage left it
    index = open_index(root)
    with pytest.raises(LibraryError, match="no calibration") as err:
        index.calibration()
    assert f"montage index {root}" in err.value.hint
    stamp = max(p.stat().st_mtime_ns for p in (root / ".montage").glob("vectors-*"))
    build_index(root, proxy, progress=False, workers=0)  # adds it; analyses nothing again
    assert max(p.stat().st_mtime_ns for p in (root / ".montage").glob("vectors-*")) == stamp
    _matches_its_vectors(root)
    name = open_index(root).meta["calibration"]  # a file of another format is made again
    np.savez(root / ".montage" / name, n=np.int64(1))
    with pytest.raises(LibraryError, match="no calibration"):
        open_index(root).calibration()
    build_index(root, proxy, progress=False, workers=0)
    _matches_its_vectors(root)


def test_in_a_one_shot_library_nothing_stands_out(tmp_path, proxy):
    one = tmp_path / "one"
    make_still(one / "card.png", size="48x48")
    build_index(one, proxy, progress=False, workers=0)
    hits, (cal,) = open_index(one).search_calibrated(["a test card"], 3)
    assert cal.sd == pytest.approx(0.0, abs=1e-6) and cal.confidence(hits[0][0].score) == 0.0
    assert cal.unrelated == 0.0  # nothing stands out, for any sentence


def test_a_copy_of_the_index_folder_keeps_its_calibration(tmp_path, proxy):
    """The calibration is a file beside the vectors, named by the meta: it moves with them."""
    root = _library(tmp_path / "lib", 2)
    build_index(root, proxy, progress=False, workers=0)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert open_index(copy).calibration().n == open_index(root).calibration().n
