"""The index under stress: old formats, interruptions, read-only libraries, worker processes."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from montage.cli import main
from planner.errors import LibraryError
from retrieval import build_index, open_index, search_library
from retrieval.index.location import READONLY_ENV, cache_index_dir, is_writable
from retrieval.index.store import DB_NAME
from tests.conftest import make_clip, make_cut_clip, make_still


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Indexes of read-only libraries go to a per-test cache, never the user's."""
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(READONLY_ENV, raising=False)


def _library(root: Path, n_clips: int = 3) -> Path:
    colours = ["red", "green", "blue", "yellow", "white"]
    for i in range(n_clips):
        make_cut_clip(root / f"clip{i}.mp4", [colours[i], colours[i + 1]], size="48x48")
    # square: the proxy classifies one crop, not 3. Colour bars: nobody in them for any people
    # detector (OpenCV's HOG, which counted people before BlazePose, "found" borderline people
    # in testsrc2 scaled up from 48 px, and one CI run counted 2 here against 3 in a worker)
    make_still(root / "card.png", size="48x48", source="smptebars")
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
    import retrieval.index.run as run_module

    monkeypatch.setattr(run_module, "EMBED_BATCH", 1)  # each file embedded as it comes
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
    import retrieval.index.run as run_module

    root = _library(tmp_path / "lib", n_clips=2)
    monkeypatch.setattr(run_module, "EMBED_BATCH", 1)  # embed each file as it comes
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


# `montage index` as the console script runs it, but committing after every file (as a long
# run does every CHECKPOINT_S seconds) and resting a second after each commit (as a long file
# would take), so a kill lands between checkpoints of a tiny library even on a loaded machine
# (a commit also writes the library's calibration, ~0.15 s at proxy-v4's 1407 dimensions: the
# run's own rule, commits at most a fifth of the time, would otherwise group the next files).
_INDEX_COMMITTING_EACH_FILE = """
import functools, sys, time
import retrieval.index.build as index
import retrieval.index.run as run
run.EMBED_BATCH = 1
index.build_index = functools.partial(index.build_index, checkpoint_s=0.0)
_commit = index._Run.commit
def commit(self, final=True):
    _commit(self, final)
    self._commit_cost = 0.0  # the next commit after the next file, however long this one took
    if not final:
        time.sleep(1.0)
index._Run.commit = commit
from montage.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _committed_files(db: Path) -> int:
    """Files in the last state committed to the index database (0 while none is readable)."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return int(con.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.Error:  # not created yet, or a commit holds the lock
        return 0


def _live_processes_in_group(pgid: int) -> list[str]:
    """Command lines of the processes (zombies aside) in process group ``pgid`` (Linux)."""
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            cmd = (stat_file.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(f"{stat_file.parent.name}: {cmd[:100]}")
    return out


@pytest.mark.slow  # several seconds; CI runs it with make test-slow
def test_an_index_killed_with_sigkill_resumes_without_duplicates(tmp_path, proxy, model_cache,
                                                                 monkeypatch, capsys) -> None:
    """SIGKILL (the OOM killer, a closed laptop lid) gives the index no chance to clean up:
    the next run must start from the last checkpoint and leave each file in it exactly once,
    and the killed run's analysis workers must not linger."""
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(model_cache))  # the proxy fixture's label cache
    colours = ["red", "green", "blue", "yellow", "white", "black", "orange"]
    root = tmp_path / "lib"
    for i in range(6):  # numbered names: no footage words, so no text model to load
        make_cut_clip(root / f"{i:02d}.mp4", colours[i : i + 2], size="48x48")
    db = root / ".montage" / DB_NAME
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _INDEX_COMMITTING_EACH_FILE, "index", str(root), "--quiet",
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 90
        while _committed_files(db) < 2:  # two checkpoints in: four files still to go
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"montage index ended or stalled before it could be killed "
                            f"(rc {proc.returncode}):\n{(tmp_path / 'killed.log').read_text()}")
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer does
        assert proc.wait(timeout=30) == -signal.SIGKILL, "it finished before the kill landed"
        if Path("/proc/self/stat").is_file():
            deadline = time.monotonic() + 10
            while (left := _live_processes_in_group(proc.pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not left, f"processes of the killed run are still alive: {left}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the run left behind
        except ProcessLookupError:
            pass
    partial = open_index(root)  # the last checkpoint is a usable index
    assert 2 <= len({s.path for s in partial.shots}) < 6
    assert len(partial.vectors) == len(partial.shots) == partial.meta["rows"]
    kept = {s.id: (s, v) for s, v in zip(partial.shots, partial.vectors.vectors())}

    capsys.readouterr()
    assert main(["index", str(root), "--quiet", "--workers", "0"]) == 0
    said = capsys.readouterr().out
    counts = re.search(r"indexed (\d+) files, reused (\d+)", said)
    assert counts, said
    indexed, reused = int(counts[1]), int(counts[2])
    assert indexed >= 1 and reused >= 2 and indexed + reused == 6, said  # resumed, not redone

    index = open_index(root)
    ids = [s.id for s in index.shots]
    assert sorted(ids) == sorted(f"{i:02d}.mp4#{n}" for i in range(6) for n in (0, 1))
    assert len(index.vectors) == len(ids) == index.meta["rows"]
    with closing(sqlite3.connect(db)) as con:
        files = con.execute("SELECT path, reason FROM files ORDER BY path").fetchall()
        assert files == [(f"{i:02d}.mp4", "") for i in range(6)]
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT path || '@' || json_extract(data, "
                           "'$.start')) FROM shots").fetchone() == (len(ids), len(ids))
    left = sorted(p.name for p in db.parent.iterdir() if p.name != "index.lock")  # kept, empty
    # no journal, stale or temp vectors, no calibration of a killed commit (keyframes/: what
    # another embedder re-embeds)
    assert left == sorted([DB_NAME, index.meta["vectors"], index.meta["calibration"],
                           "keyframes"]), left
    stored = sorted(p.suffix for p in (db.parent / "keyframes").iterdir())
    assert stored == [".kf"] * 6, stored  # one per file, no temporary left by the kill
    # The checkpointed files were reused as they were: each shot keeps its own vector.
    now = {s.id: (s, v) for s, v in zip(index.shots, index.vectors.vectors())}
    for shot_id, (shot, vector) in kept.items():
        assert now[shot_id][0] == shot and np.allclose(now[shot_id][1], vector, atol=1e-6)
    hits = index.search(["red", "a green field"], 3)  # its own embedder (the default)
    assert [len(h) for h in hits] == [3, 3] and all(h.shot.id in now for q in hits for h in q)


def test_a_commit_killed_halfway_is_rolled_back_when_reading(tmp_path) -> None:
    """A run killed while SQLite writes a big commit leaves a hot journal; a read-only open
    cannot roll it back ("attempt to write a readonly database"), so reading opens writable."""
    from retrieval.index import store

    with closing(store.connect(tmp_path)) as con:
        con.execute("INSERT INTO meta (key, value) VALUES ('rows', '3')")
        con.commit()
    db = tmp_path / store.DB_NAME
    killed = (f"import os, sqlite3\ncon = sqlite3.connect({str(db)!r})\n"
              "con.execute('PRAGMA cache_size=1')\ncon.execute('BEGIN')\n"
              "for i in range(20000):\n"
              "    con.execute('INSERT INTO meta VALUES (?, ?)', (f'k{i}', '\"' + 'x' * 200 + '\"'))\n"
              "con.execute(\"UPDATE meta SET value = '99' WHERE key = 'rows'\")\n"
              "os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", killed], check=False)
    journal = db.with_name(db.name + "-journal")
    assert journal.is_file() and journal.stat().st_size > 0, "the kill left no hot journal"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as raw:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            raw.execute("SELECT count(*) FROM meta").fetchone()
    with closing(store.connect(tmp_path, readonly=True)) as con:
        assert store.read_meta(con) == {"rows": 3}  # the half-written commit is gone
    assert not journal.exists() or journal.stat().st_size == 0
