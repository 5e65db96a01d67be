"""Keywords (lemmatised, idf-weighted), the four ranking modes, tag files and contact sheets."""
from __future__ import annotations

import json
from contextlib import closing

import numpy as np
import pytest
from PIL import Image

from retrieval.index import store
from retrieval.embed.keywords import keyword_score, label_terms, terms
from retrieval.search.ranking import KEYWORD_WEIGHT, MODES, rank
from retrieval.search.sheet import write_sheet
from retrieval.media.tags import folder_tags, tag_text
from retrieval.types import Hit, LibraryShot
from retrieval.index.vectors import VectorIndex
from tests.conftest import make_cut_clip, make_still


def test_terms_are_lemmatised_content_words() -> None:
    assert terms("Red taxis driving through the streets") == ("red", "taxi", "drive", "street")
    assert terms("the galaxies") == ("galaxy",) and terms("a the of") == ()
    assert label_terms(("tabby cat", "cats", "Egyptian Mau")) == ["tabby", "cat", "egyptian", "mau"]


def test_keyword_score_counts_matches_and_halves_common_words() -> None:
    q = ("red", "taxi", "street", "night")
    df = {"red": 90, "taxi": 2, "street": 10, "night": 5}
    assert keyword_score(q, {"taxi"}, df, 100) == pytest.approx(1 / 3)
    assert keyword_score(q, {"red"}, df, 100) == pytest.approx(0.5 / 3)  # in 90 % of shots
    assert keyword_score(q, {"taxi", "street"}, df, 100) == pytest.approx(2 / 3)
    assert keyword_score(q, {"taxi", "street", "night", "red"}, df, 100) == 1.0  # capped
    assert keyword_score((), {"red"}, df, 100) == 0.0


@pytest.fixture
def tiny(tmp_path):
    """Four shots in a real store + flat index: vectors along axes, labels chosen by hand."""
    labels = [("taxi", "street"), ("cat",), ("street", "night"), ("dog",)]
    shots = [LibraryShot(id=f"s{i}.png#0", path=f"s{i}.png", kind="still", start=0, end=0,
                         width=8, height=8, fps=0, labels=lab) for i, lab in enumerate(labels)]
    vecs = np.eye(4, dtype=np.float32)
    with closing(store.connect(tmp_path)) as con:
        store.replace_all(con, {"version": 2}, {}, [(i, s, label_terms(s.labels))
                                                     for i, s in enumerate(shots)])
    con = store.connect(tmp_path, readonly=True)
    yield VectorIndex(4, vecs), (lambda t, lim: store.postings(con, t, lim)), shots
    con.close()


def test_modes_rank_by_their_evidence(tiny) -> None:
    vectors, postings, _ = tiny
    q = np.array([0.1, 0.2, 0.9, 0.6], np.float32)
    q /= np.linalg.norm(q)
    emb = rank(vectors, postings, 4, "taxis", q, 4, "embedding")
    assert [r for r, _ in emb] == [2, 3, 1, 0]
    kw = rank(vectors, postings, 4, "taxis", q, 2, "keywords")
    assert kw[0] == (0, pytest.approx(1 / 3)) and kw[1][1] == 0.0
    weighted = dict(rank(vectors, postings, 4, "taxis", q, 4, "weighted"))
    assert weighted[0] == pytest.approx(q[0] + KEYWORD_WEIGHT / 3) and weighted[2] == pytest.approx(q[2])
    cascade = rank(vectors, postings, 4, "taxis", q, 4, "cascade")
    assert [r for r, _ in cascade] == [0, 2, 3, 1]  # the keyword match first, whatever its cosine
    assert set(MODES) == {"embedding", "keywords", "weighted", "cascade"}
    with pytest.raises(ValueError, match="mode"):
        rank(vectors, postings, 4, "x", q, 1, "bm25")


def test_keyword_matches_outside_the_embedding_pool_are_scored(tmp_path, monkeypatch) -> None:
    import retrieval.search.ranking as ranking

    monkeypatch.setattr(ranking, "_MIN_POOL", 1)  # the embedding pool: 5 rows for top=1
    vecs = np.zeros((10, 16), np.float32)
    for i in range(9):  # nine unlabelled shots, each at cosine 0.05 from the query
        vecs[i, 0], vecs[i, i + 1] = 0.05, np.sqrt(1 - 0.05**2)
    vecs[9, 15] = 1.0  # the cat: orthogonal to the query, so never in the embedding pool
    shots = [LibraryShot(id=f"s{i}#0", path=f"s{i}.png", kind="still", start=0, end=0, width=8,
                         height=8, fps=0, labels=("cat",) if i == 9 else ()) for i in range(10)]
    with closing(store.connect(tmp_path)) as con:
        store.replace_all(con, {"version": 2}, {}, [(i, s, label_terms(s.labels))
                                                     for i, s in enumerate(shots)])
    q = np.eye(16, dtype=np.float32)[0]
    with closing(store.connect(tmp_path, readonly=True)) as con:
        postings = lambda t, lim: store.postings(con, t, lim)  # noqa: E731
        assert rank(VectorIndex(16, vecs), postings, 10, "a cat", q, 1, "weighted") == [
            (9, pytest.approx(KEYWORD_WEIGHT / 3))]
        assert rank(VectorIndex(16, vecs), postings, 10, "a cat", q, 1, "embedding")[0][0] != 9


def test_tag_files_csv_and_json(tmp_path) -> None:
    (tmp_path / "tags.csv").write_text("file,tags\nboat.mp4,harbour; dawn\n# note\nboat.mp4,gulls\n")
    (tmp_path / "tags.json").write_text(json.dumps({"boat.mp4": ["fishing"], "sea.png": "waves"}))
    tags = folder_tags(tmp_path)
    assert tags == {"boat.mp4": "harbour; dawn, gulls, fishing", "sea.png": "waves"}
    (tmp_path / "boat.mp4.txt").write_text("Boats at first light")
    assert tag_text(tmp_path, "boat.mp4") == "Boats at first light. harbour; dawn, gulls, fishing"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tags.json").write_text(json.dumps([{"file": "a.png", "tags": ["x"],
                                                             "description": "a red door"}]))
    assert folder_tags(tmp_path / "sub") == {"a.png": "x, a red door"}


def test_malformed_tag_file_is_ignored_with_a_warning(tmp_path, caplog) -> None:
    (tmp_path / "tags.json").write_text("{not json")
    assert folder_tags(tmp_path) == {}
    assert any("tags.json" in r.getMessage() for r in caplog.records)


def test_contact_sheet_draws_each_hit(tmp_path) -> None:
    clip = make_cut_clip(tmp_path / "rgb.mp4", ["red", "lime"])
    make_still(tmp_path / "card.png", size="64x48")
    shot = LibraryShot("rgb.mp4#1", "rgb.mp4", "video", 1.0, 2.0, 64, 36, 24.0)
    still = LibraryShot("card.png#0", "card.png", "still", 0, 0, 64, 48, 0)
    gone = LibraryShot("gone.png#0", "gone.png", "still", 0, 0, 64, 48, 0)
    out = write_sheet(tmp_path, ["green", "nothing"],
                      [[Hit(shot, 0.91), Hit(still, 0.5), Hit(gone, 0.1)], []], tmp_path / "s.png")
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] >= 3 * 240 and img.shape[0] > 2 * 135
    first = img[28 + 8 + 20 : 28 + 8 + 110, 8 + 20 : 8 + 220].reshape(-1, 3).mean(axis=0)
    assert first[1] > 150 and first[0] < 80  # the middle of shot #1 is green
    assert clip.is_file()
