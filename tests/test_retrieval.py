"""Retrieval on tiny real media: file discovery, decoding, shot detection, the index, search."""
from __future__ import annotations

import json
import logging
import os
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import make_clip, make_cut_clip, make_still
from PIL import Image

from planner.errors import LibraryError, MediaError, ModelError
from planner.shots import PlannedShot, ShotPlan
from retrieval.embed.base import PROXY_NAME
from retrieval import (
    CandidateSet,
    build_index,
    candidates_for_plan,
    find_media,
    hits_to_json,
    make_embedder,
    open_index,
    search_library,
)
from retrieval.media.cuts import detect_shots, merge_short
from retrieval.media.library import footage_text, footage_words, name_words
from retrieval.media.decode import probe, read_frames, read_still
from retrieval.index.store import DB_NAME
from retrieval.index.vectors import VectorIndex


def _make_library(root: Path) -> Path:
    """A cut clip, a plain clip with a sidecar note, a still, a corrupt and an empty file."""
    make_cut_clip(root / "cuts.mp4", ["red", "green", "blue"])
    make_clip(root / "plain.mp4", duration=2.0)
    (root / "plain.mp4.txt").write_text("a test pattern on a screen\n", encoding="utf-8")
    make_still(root / "stills" / "still.png")
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "empty.mp4").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def first_build(tmp_path_factory, proxy):
    """The library indexed once, with the report and the warnings of that first run."""
    root = _make_library(tmp_path_factory.mktemp("indexed") / "footage")
    handler = _Collect()
    logging.getLogger("retrieval").addHandler(handler)
    try:
        report = build_index(root, proxy, progress=False, workers=0)
    finally:
        logging.getLogger("retrieval").removeHandler(handler)
    return root, report, handler.messages


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def library(first_build, tmp_path: Path) -> Path:
    """A private copy of the indexed library (mtimes kept, so its index is current)."""
    root = tmp_path / "footage"
    shutil.copytree(first_build[0], root)
    return root


# -- library -------------------------------------------------------------------------------
def test_find_media_lists_every_file_but_hidden_ones_and_notes(tmp_path: Path) -> None:
    for name in ["b.MP4", "a.jpeg", "notes.txt", ".hidden.mp4", ".cache/x.mp4", "sub/c.webm",
                 ".montage/y.png", "sub/D.Png", "e.mkv.bak", "f.avi", "g.MOV", "h.webp",
                 "f.txt", "b.MP4.txt", "sub/tags.csv", "sub/anim.gif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 3)
    found = find_media(tmp_path)
    # sidecar notes (f.txt beside f.avi, b.MP4.txt) and tag files are the library's own words
    assert [m.path for m in found] == ["a.jpeg", "b.MP4", "e.mkv.bak", "f.avi", "g.MOV",
                                       "h.webp", "notes.txt", "sub/D.Png", "sub/anim.gif",
                                       "sub/c.webm"]
    kinds = {m.path: m.kind for m in found}
    assert kinds["a.jpeg"] == "still" and kinds["sub/c.webm"] == "video"
    # no known extension: the content decides when the file is indexed
    assert kinds["notes.txt"] == kinds["e.mkv.bak"] == kinds["sub/anim.gif"] == ""
    assert all(m.size == 3 and m.mtime_ns > 0 for m in found)


def test_find_media_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(LibraryError) as err:
        find_media(tmp_path / "nope")
    assert "does not exist" in str(err.value) and str(tmp_path / "nope") in str(err.value)


def test_find_media_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "f.mp4").write_bytes(b"")
    with pytest.raises(LibraryError, match="not a folder"):
        find_media(tmp_path / "f.mp4")


def test_find_media_empty_folder(tmp_path: Path) -> None:
    (tmp_path / ".hidden.mp4").write_text("hi")
    with pytest.raises(LibraryError) as err:
        find_media(tmp_path)
    assert str(tmp_path) in err.value.message and "no files" in err.value.message
    assert "hidden" in err.value.hint


def test_a_folder_without_media_says_what_it_holds(tmp_path: Path, proxy) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(LibraryError) as err:
        build_index(tmp_path, proxy, progress=False, workers=0)
    assert "no media files found" in err.value.message and str(tmp_path) in err.value.message
    assert "readme.txt (" in err.value.message and "footage.md" in err.value.hint


def test_footage_words_from_names_and_sidecar(tmp_path: Path) -> None:
    assert name_words("beach_sunset-2019/DJI_0042.MP4") == ["beach", "sunset"]
    assert name_words("cityStreetNight.mov") == ["city", "street", "night"]
    assert name_words("HTTPServer_room.png") == ["http", "server", "room"]
    (tmp_path / "harbour").mkdir()
    (tmp_path / "harbour" / "boat_01.mp4").write_bytes(b"")
    (tmp_path / "harbour" / "boat_01.mp4.txt").write_text("Fishing boats at dawn")
    text = footage_text(tmp_path, "harbour/boat_01.mp4")
    assert text.startswith("harbour boat") and "Fishing boats at dawn" in text
    assert footage_words(text) == ["harbour", "boat", "fishing", "boats", "dawn"]


# -- media ---------------------------------------------------------------------------------
def test_probe_and_read_frames_land_on_the_right_shot(tmp_path: Path) -> None:
    clip = make_cut_clip(tmp_path / "rgb.mp4", ["red", "lime", "blue"])
    info = probe(clip)
    assert (info.width, info.height) == (64, 36)
    assert info.duration == pytest.approx(3.0, abs=0.1) and info.fps == pytest.approx(24)
    assert not info.has_audio and info.n_frames == pytest.approx(72, abs=2)
    frames = read_frames(clip, [2.5, 0.2, 1.5, 99.0])  # out of order, and past the end
    assert [f.shape for f in frames] == [(36, 64, 3)] * 4
    dominant = [int(np.argmax(f.reshape(-1, 3).mean(axis=0))) for f in frames]
    assert dominant == [2, 0, 1, 2]  # blue, red, green, last frame (blue)


def test_bad_media_raises_media_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(1).bytes(2048))
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not a png")
    for path, words in [(broken, "not a readable video"), (empty, "empty"), (bad_png, "image")]:
        with pytest.raises(MediaError) as err:
            probe(path)
        assert str(path) in str(err.value) and words in str(err.value)
    with pytest.raises(MediaError, match="broken.mp4"):
        read_frames(broken, [0.0])


def test_read_still_applies_exif_orientation(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "phone.jpg", exif=exif)
    assert read_still(tmp_path / "phone.jpg").shape == (40, 20, 3)


# -- shot detection ------------------------------------------------------------------------
def test_detect_shots_finds_the_cuts(tmp_path: Path) -> None:
    clip = make_cut_clip(tmp_path / "cuts.mp4", ["red", "green", "blue"])
    shots = detect_shots(clip)
    assert len(shots) == 3
    assert shots[0][0] == 0.0 and shots[-1][1] == pytest.approx(3.0, abs=0.05)
    assert shots[1][0] == pytest.approx(1.0, abs=0.1) and shots[2][0] == pytest.approx(2.0, abs=0.1)
    assert all(a[1] == b[0] for a, b in zip(shots, shots[1:]))  # contiguous


def test_detect_shots_without_a_cut_is_one_shot(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "gray.mp4", duration=1.5, source="color")
    assert detect_shots(clip) == [(0.0, pytest.approx(1.5, abs=0.05))]


def test_merge_short_shots_into_the_shorter_neighbour() -> None:
    assert merge_short([(0, 1), (1, 1.2), (1.2, 3)], 0.4) == [(0, 1.2), (1.2, 3)]
    assert merge_short([(0, 0.1), (0.1, 2), (2, 2.3)], 0.4) == [(0, 2.3)]
    assert merge_short([(0, 0.2)], 0.4) == [(0, 0.2)]  # a single short file stays one shot


# -- the index -----------------------------------------------------------------------------
def test_build_index_indexes_good_files_and_skips_bad_ones(first_build, library) -> None:
    _, report, warned = first_build
    assert (report.files_total, report.files_indexed, report.files_reused) == (5, 3, 0)
    assert [p for p, _ in report.files_skipped] == ["broken.mp4", "empty.mp4"]
    assert "empty" in dict(report.files_skipped)["empty.mp4"]
    assert sum("broken.mp4" in w for w in warned) == 1 and sum("empty.mp4" in w for w in warned) == 1
    assert report.footage_seconds == pytest.approx(5.0, abs=0.2)  # the two clips, not the still
    index = open_index(library)
    by_file: dict[str, list] = {}
    for shot in index.shots:
        by_file.setdefault(shot.path, []).append(shot)
    assert sorted(by_file) == ["cuts.mp4", "plain.mp4", "stills/still.png"]
    cuts = by_file["cuts.mp4"]
    assert [s.id for s in cuts] == ["cuts.mp4#0", "cuts.mp4#1", "cuts.mp4#2"]
    assert [round(s.start) for s in cuts] == [0, 1, 2] and cuts[-1].end == pytest.approx(3, abs=0.05)
    assert (cuts[0].width, cuts[0].height, cuts[0].fps) == (64, 36, 24.0)
    still = by_file["stills/still.png"][0]
    assert still.is_still and still.start == still.end == 0.0 and still.fps == 0.0
    assert "stills" not in still.labels  # a folder word for the kind of file says nothing
    assert {"test", "pattern", "screen"} <= set(by_file["plain.mp4"][0].labels)  # sidecar words
    assert report.shots == len(index.shots) == len(index.vectors)
    assert np.allclose(np.linalg.norm(index.vectors.vectors(), axis=1), 1.0, atol=1e-5)
    assert index.embedder_name == "proxy-v3" and index.folder == library / ".montage"


def test_every_shot_has_features(first_build, library) -> None:
    shots = {s.id: s for s in open_index(library).shots}
    assert all(s.features is not None for s in shots.values())
    red, green, blue = (shots[f"cuts.mp4#{i}"].features for i in range(3))
    assert red.colors[0][0] > 200 and red.colors[0][1] < 60  # a flat red shot is red
    assert blue.colors[0][2] > 200 and green.colors[0][1] > 100
    assert red.camera == "static" and red.stability == pytest.approx(1.0) and red.motion == 0.0
    assert red.sharpness < 0.05  # a flat colour has no edges
    assert sum(red.histogram) == pytest.approx(1.0, abs=1e-3) and len(red.histogram) == 24
    assert (red.faces, red.scale, red.face_descriptors) == (0, "unknown", ())
    pattern = shots["plain.mp4#0"].features
    assert pattern.sharpness > 0.5 and pattern.saturation > red.saturation / 3
    assert shots["stills/still.png#0"].features.motion == 0.0


def _noted(real, opened: list, path, *args, **kwargs):
    opened.append(str(path))
    return real(path, *args, **kwargs)


class _Asked:
    """An embedder that notes each time it is asked for vectors, labels or query vectors."""

    def __init__(self, inner) -> None:
        self._inner, self.asked = inner, []

    def __getattr__(self, name: str):
        value = getattr(self._inner, name)
        if name not in ("analyse", "embed_images", "embed_queries", "describe"):
            return value

        def asked(*args, **kwargs):
            self.asked.append(name)
            return value(*args, **kwargs)
        return asked


def test_second_run_reuses_everything(first_build, library, proxy, monkeypatch) -> None:
    import av
    from PIL import Image

    first = first_build[1]
    db = library / ".montage" / DB_NAME
    before = db.stat().st_mtime_ns
    opened: list = []  # every file opened by a decoder (PyAV for video, Pillow for stills)
    for module in (av, Image):
        monkeypatch.setattr(module, "open", partial(_noted, module.open, opened))
    embedder, finished = _Asked(proxy), []
    second = build_index(library, embedder, progress=False,
                         on_file=lambda path, done, total: finished.append(path))
    assert (second.files_indexed, second.files_reused, second.shots) == (0, 3, first.shots)
    assert second.files_skipped == first.files_skipped
    assert db.stat().st_mtime_ns == before  # nothing rewritten
    assert embedder.asked == []  # no model was asked for anything
    assert finished == [] and opened == []  # no file analysed, none even opened to decode


def test_changed_file_is_reindexed_alone(library, proxy) -> None:
    old = open_index(library)
    old_cut_rows = old.vectors.vectors()[[i for i, s in enumerate(old.shots) if s.path == "cuts.mp4"]]
    make_clip(library / "plain.mp4", duration=1.0, source="color")
    report = build_index(library, proxy, progress=False, workers=0)
    assert (report.files_indexed, report.files_reused) == (1, 2)
    new = open_index(library)
    plain = [s for s in new.shots if s.path == "plain.mp4"]
    assert len(plain) == 1 and plain[0].end == pytest.approx(1.0, abs=0.05)
    cut_rows = new.vectors.vectors()[[i for i, s in enumerate(new.shots) if s.path == "cuts.mp4"]]
    assert np.array_equal(cut_rows, old_cut_rows)  # reused, not recomputed
    assert len(list((library / ".montage").glob("vectors-*.faiss"))) == 1  # old one removed


def test_touched_file_with_same_content_is_reused(library, proxy) -> None:
    target = library / "cuts.mp4"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = build_index(library, proxy, progress=False)
    assert (report.files_indexed, report.files_reused) == (0, 3)
    again = build_index(library, proxy, progress=False)  # the new mtime was recorded
    assert (again.files_indexed, again.files_reused) == (0, 3)


def test_sidecar_change_reindexes_its_file(library, proxy) -> None:
    (library / "plain.mp4.txt").write_text("harbour with fishing boats, longer note")
    report = build_index(library, proxy, progress=False, workers=0)
    assert (report.files_indexed, report.files_reused) == (1, 2)
    plain = [s for s in open_index(library).shots if s.path == "plain.mp4"]
    assert "harbour" in plain[0].labels


def test_folder_tags_file_reindexes_only_the_tagged_file(library, proxy) -> None:
    (library / "stills" / "tags.csv").write_text("file,tags\nstill.png,\"lighthouse; rocky coast\"\n")
    report = build_index(library, proxy, progress=False, workers=0)
    assert (report.files_indexed, report.files_reused) == (1, 2)
    still = [s for s in open_index(library).shots if s.path == "stills/still.png"][0]
    assert {"lighthouse", "rocky", "coast"} <= set(still.labels)
    hit = search_library(library, ["a lighthouse on the coast"], top=1)[0][0]
    assert hit.shot.path == "stills/still.png"


def test_deleted_file_drops_its_shots(first_build, library, proxy) -> None:
    first = first_build[1]
    (library / "stills" / "still.png").unlink()
    (library / "broken.mp4").unlink()
    report = build_index(library, proxy, progress=False)
    assert (report.files_total, report.files_indexed, report.files_reused) == (3, 0, 2)
    assert report.shots == first.shots - 1 and [p for p, _ in report.files_skipped] == ["empty.mp4"]
    index = open_index(library)
    assert all(s.path != "stills/still.png" for s in index.shots)
    assert len(index.vectors) == len(index.shots)


def test_unfinished_write_leaves_the_previous_index_usable(library, proxy) -> None:
    folder = library / ".montage"
    (folder / "vectors-crashed0000.faiss").write_bytes(b"half a file")
    (folder / ".vectors-x.faiss.123.tmp").write_bytes(b"half")
    index = open_index(library)
    assert len(index.shots) == 5
    assert index.search(["red"], 2)[0]


def test_lost_vectors_file_is_rebuilt(library, proxy) -> None:
    for vectors in (library / ".montage").glob("vectors-*.faiss"):
        vectors.unlink()
    with pytest.raises(LibraryError, match="damaged"):
        open_index(library)
    report = build_index(library, proxy, progress=False, workers=0)
    assert (report.files_indexed, report.files_reused) == (3, 0)
    assert len(open_index(library).shots) == report.shots


def test_open_index_without_index_says_what_to_run(tmp_path: Path) -> None:
    make_still(tmp_path / "a.png")
    with pytest.raises(LibraryError) as err:
        open_index(tmp_path)
    assert "no index" in err.value.message and "montage index" in err.value.hint


def test_damaged_database_is_refused_for_search_and_rebuilt_by_index(library, proxy, caplog) -> None:
    (library / ".montage" / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(LibraryError) as err:
        open_index(library)
    assert DB_NAME in str(err.value) and "montage index" in err.value.hint
    report = build_index(library, proxy, progress=False, workers=0)
    assert report.files_indexed == 3 and any("unreadable" in r.getMessage() for r in caplog.records)
    assert len(open_index(library).shots) == report.shots


# -- search --------------------------------------------------------------------------------
def test_search_returns_hits_in_the_json_shape(library, proxy) -> None:
    queries = ["a red wall", "a test pattern"]
    results = search_library(library, queries, top=3)
    assert [len(r) for r in results] == [3, 3]
    data = hits_to_json(library, queries, results)
    assert [d["query"] for d in data] == queries
    for entry in data:
        assert set(entry) == {"query", "hits"}
        scores = [h["score"] for h in entry["hits"]]
        assert scores == sorted(scores, reverse=True)
        for hit in entry["hits"]:
            assert set(hit) == {"path", "start", "end", "score", "moment"}
            assert (library / hit["path"]).is_file() and hit["end"] >= hit["start"]
    json.dumps(data)  # plain JSON types only
    # the sidecar says "test pattern": keywords and the text blend put that clip first
    assert data[1]["hits"][0]["path"] == "plain.mp4"


def test_search_with_another_embedder_names_both(library, proxy) -> None:
    other = "clip:ViT-B-32:laion2b_s34b_b79k"
    with pytest.raises(LibraryError) as err:
        open_index(library).search(["a cat"], 3, embedder=other)
    assert "proxy-v3" in str(err.value) and other in str(err.value)
    assert open_index(library).search(["a cat"], 1, embedder="proxy-v3")[0]  # same one: fine


def test_candidates_for_plan_batches_the_plan(library, proxy) -> None:
    plan = ShotPlan(source="<text>", shots=(
        PlannedShot("s1", 0, "A red wall.", "red wall", (), 2.0, 1),
        PlannedShot("s2", 0, "A test pattern.", "", (), 2.0, 2),
    ))
    cands = candidates_for_plan(open_index(library), plan, top=2)
    assert cands.embedder == "proxy-v3" and cands.library == str(library.resolve())
    assert [c.shot_id for c in cands.shots] == ["s1", "s2"]
    assert [c.query for c in cands.shots] == ["red wall", "A test pattern."]  # empty query: text
    assert all(len(c.hits) == 2 for c in cands.shots)
    assert all(h.shot.features is not None for c in cands.shots for h in c.hits)
    assert CandidateSet.from_json(cands.to_json()) == cands


def test_proxy_index_finds_the_cat_and_the_coffee(tmp_path: Path, proxy) -> None:
    import importlib.util

    data = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"
    shutil.copy(data / "chelsea.png", tmp_path / "img1.png")  # names that give nothing away
    shutil.copy(data / "coffee.png", tmp_path / "img2.png")
    build_index(tmp_path, proxy, progress=False, workers=0)
    cat, coffee = search_library(tmp_path, ["a cat", "a cup of coffee"], top=2)
    assert [h.shot.path for h in cat] == ["img1.png", "img2.png"]
    assert [h.shot.path for h in coffee] == ["img2.png", "img1.png"]


def test_a_long_take_is_trimmed_around_the_moment_that_matches(tmp_path: Path, proxy) -> None:
    """One 11 s shot that dissolves from the coffee to the cat (no cut): the search says where
    each is, and the trim for a 3 s shot goes there instead of the middle."""
    import importlib.util
    import sqlite3
    import subprocess
    from fractions import Fraction

    from montage.optimize import shot_options
    from tests.conftest import FFMPEG

    data = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"
    lib = tmp_path / "lib"
    lib.mkdir()
    chain = ("[0]scale=160:120,setsar=1,fps=25[a];[1]scale=160:120,setsar=1,fps=25[b];"
             "[a][b]xfade=transition=fade:duration=3:offset=4,format=yuv420p")
    subprocess.run([FFMPEG, "-v", "error", "-y", "-loop", "1", "-t", "7", "-i", str(data / "coffee.png"),
                    "-loop", "1", "-t", "7", "-i", str(data / "chelsea.png"), "-filter_complex",
                    chain, "-c:v", "libx264", "-preset", "veryfast", str(lib / "take.mp4")],
                   check=True, capture_output=True)
    build_index(lib, proxy, progress=False, workers=0)
    index = open_index(lib)
    assert len(index.shots) == 1 and index.shots[0].duration > 10
    coffee, cat = (hits[0] for hits in index.search(["a cup of coffee", "a cat"], top=1, embedder=proxy))
    assert coffee.moment is not None and cat.moment is not None
    assert coffee.moment < 4.0 < 7.0 < cat.moment  # before and after the dissolve
    shot = PlannedShot(id="s1", scene=0, text="A cat.", query="cat", characters=(), duration=3.0,
                       line=1)
    rate = Fraction(25)
    (near_cat,) = shot_options(shot, (cat,), rate)
    (near_coffee,) = shot_options(shot, (coffee,), rate)
    assert near_coffee.source_in / 25 < 4.0 < 7.0 < near_cat.source_in / 25 + near_cat.frames / 25
    assert abs((near_cat.source_in + near_cat.frames / 2) / 25 - cat.moment) < 0.1
    from montage.optimize import optimize
    from retrieval.types import ShotCandidates

    from tests.rulekit import RAW

    one = CandidateSet(str(lib), PROXY_NAME, (ShotCandidates("s1", "cat", (cat, coffee), RAW),))
    chosen = optimize(ShotPlan(source="t", shots=(shot,)), one, threshold=0.0,
                      rate=rate).edl.decisions[0]
    assert chosen.source_in == near_cat.source_in and "trimmed around it" in chosen.reason
    assert CandidateSet.from_json(one.to_json()) == one  # the moments survive a recut's reload
    with sqlite3.connect(index.folder / DB_NAME) as con:  # an index from before moments were kept
        con.execute("DROP TABLE moments")
    (old,) = open_index(lib).search(["a cat"], top=1, embedder=proxy)
    assert old[0].moment is None and old[0].score == pytest.approx(cat.score)


def test_vector_index_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(20, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = VectorIndex(8, vecs)
    assert index.kind == "flat"
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss")
    scores, ids = loaded.search(vecs[[3, 7]], 4)
    assert ids[:, 0].tolist() == [3, 7] and scores[:, 0] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert np.array_equal(loaded.vectors(), vecs) and np.array_equal(loaded.rows([5, 2]), vecs[[5, 2]])
    with pytest.raises(ValueError, match="shape"):
        loaded.search(np.zeros((1, 5), np.float32), 1)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_finds_neighbours_and_round_trips(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 16))
    vecs = (centres[rng.integers(40, size=3000)] + 0.2 * rng.normal(size=(3000, 16))).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = VectorIndex(16, vecs, kind=kind, nlist=64 if kind == "ivf" else None)
    assert index.kind == kind
    exact = VectorIndex(16, vecs, kind="flat")
    queries = vecs[:50] + 0.01
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall > 0.8
    index.save(tmp_path / "a.faiss")
    loaded = VectorIndex.load(tmp_path / "a.faiss")
    assert loaded.kind == kind and np.array_equal(loaded.rows([0, 2999]), vecs[[0, 2999]])
    assert np.array_equal(loaded.search(queries, 10)[1], found)


def test_auto_index_kind_switches_above_the_threshold(monkeypatch) -> None:
    import retrieval.index.vectors as vectors_module

    monkeypatch.setattr(vectors_module, "EXACT_MAX", 100)
    vecs = np.random.default_rng(4).normal(size=(101, 8)).astype(np.float32)
    assert VectorIndex(8, vecs[:100]).kind == "flat" and VectorIndex(8, vecs).kind == "hnsw"


def test_unknown_embedder_lists_the_available_ones() -> None:
    with pytest.raises(ModelError) as err:
        make_embedder("bert")
    assert "bert" in err.value.message and "proxy" in err.value.hint and "clip" in err.value.hint
