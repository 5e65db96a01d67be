"""Paths in the index are relative to the library root: a moved (or differently mounted)
library is searched with the index it carries, without re-indexing."""
from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from retrieval import build_index, open_index, search_library
from retrieval.index.store import DB_NAME
from tests.conftest import make_clip, make_cut_clip


def test_a_moved_library_is_searched_with_its_index(tmp_path, proxy) -> None:
    old = tmp_path / "mnt-a" / "footage"
    make_cut_clip(old / "cuts.mp4", ["red", "blue"], size="48x48")
    make_clip(old / "day" / "plain.mp4", duration=1.0, size="48x48")
    (old / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(2048))
    first = build_index(old, proxy, progress=False, workers=0)
    assert (first.files_indexed, len(first.files_skipped)) == (2, 1)
    before = search_library(old, ["a red screen"], top=3, embedder=proxy)

    with closing(sqlite3.connect(old / ".montage" / DB_NAME)) as con:
        stored = "\n".join(str(v) for table in ("meta", "files", "shots")
                           for row in con.execute(f"SELECT * FROM {table}") for v in row)
    assert str(tmp_path) not in stored  # no absolute path anywhere, skip reasons included

    new = tmp_path / "mnt-b" / "archive" / "footage"
    new.parent.mkdir(parents=True)
    shutil.move(str(old), str(new))
    assert not old.exists()
    index = open_index(new)
    after = index.search(["a red screen"], top=3, embedder=proxy)
    assert [h.shot.id for h in after[0]] == [h.shot.id for h in before[0]]
    assert all((new / h.shot.path).is_file() for h in after[0])
    again = build_index(new, proxy, progress=False, workers=0)  # nothing to redo after a move
    assert (again.files_indexed, again.files_reused) == (0, 2)
