"""The index's metadata in SQLite: files, shots (keyed by shot id) and keyword postings.

The vectors live in a FAISS file beside it (``vectors-<id>.faiss``), row ``r`` of which is the
shot whose ``row`` is ``r``. One transaction swaps in a new state (the meta row naming the new
vectors file included), so a crash leaves either the old index or the new one, never a mix.
The ``terms`` table is an inverted index of lemmatised keywords for the keyword stage of a
search, so keywords are matched in SQL rather than by loading every shot. The ``moments``
table keeps each video shot's keyframe times and vectors (float16), read only for the hits of a
search, to say where in a long shot the query is best met.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import numpy as np

from retrieval.types import LibraryShot, shot_from_dict

Moments = tuple[tuple[float, ...], np.ndarray]  # keyframe times (s), their unit vectors (k x dim)

DB_NAME = "index.sqlite"
LEGACY_MANIFEST = "index.json"  # format 1 (montage 0.1): detected, never read
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha1 TEXT NOT NULL, text_sig TEXT NOT NULL, seconds REAL NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT ''  -- why it was skipped; '' for an indexed file
);
CREATE TABLE IF NOT EXISTS shots (
    id TEXT PRIMARY KEY, row INTEGER NOT NULL UNIQUE, path TEXT NOT NULL, data TEXT NOT NULL,
    terms TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shots_path ON shots (path);
CREATE TABLE IF NOT EXISTS terms (term TEXT NOT NULL, row INTEGER NOT NULL,
                                  PRIMARY KEY (term, row)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terms_row ON terms (row);  -- a large index drops shots by row
CREATE TABLE IF NOT EXISTS moments (  -- a video shot's keyframes: times and unit vectors
    row INTEGER PRIMARY KEY, times TEXT NOT NULL, vectors BLOB NOT NULL  -- float16, k x dim
);
"""


def connect(folder: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the index database in ``folder`` (created when writing)."""
    path = Path(folder) / DB_NAME
    hot = path.with_name(path.name + "-journal")  # left by a run killed mid-commit
    if readonly and hot.is_file() and hot.stat().st_size and os.access(path.parent, os.W_OK):
        con = sqlite3.connect(path)  # a writable connection rolls the half-written commit back
    elif readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    else:
        con = sqlite3.connect(path)
        con.executescript(SCHEMA)
    con.row_factory = sqlite3.Row
    return con


def read_meta(con: sqlite3.Connection) -> dict:
    try:
        return {r["key"]: json.loads(r["value"]) for r in con.execute("SELECT key, value FROM meta")}
    except sqlite3.OperationalError:
        return {}


def read_files(con: sqlite3.Connection) -> dict[str, dict]:
    """path -> file record (with ``reason`` non-empty for skipped files)."""
    return {r["path"]: dict(r) for r in con.execute("SELECT * FROM files")}


def shots_of(con: sqlite3.Connection, path: str) -> list[tuple[int, dict, list[str]]]:
    """(row, shot dict, terms) of one file's shots, in shot order."""
    rows = con.execute("SELECT row, data, terms FROM shots WHERE path = ? ORDER BY row", (path,))
    return [(r["row"], json.loads(r["data"]), json.loads(r["terms"])) for r in rows]


def shots_by_rows(con: sqlite3.Connection, rows: Iterable[int]) -> dict[int, LibraryShot]:
    """The shots stored at the given vector rows."""
    wanted = sorted({int(r) for r in rows})
    out: dict[int, LibraryShot] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for r in con.execute(f"SELECT row, data FROM shots WHERE row IN ({marks})", chunk):
            out[r["row"]] = shot_from_dict(json.loads(r["data"]))
    return out


def first_rows(con: sqlite3.Connection, n: int) -> list[int]:
    """The first ``n`` vector rows that hold a shot, in order (a large index's rows have gaps
    where shots were removed)."""
    return [r["row"] for r in con.execute("SELECT row FROM shots ORDER BY row LIMIT ?", (int(n),))]


def all_shots(con: sqlite3.Connection) -> list[LibraryShot]:
    return [shot_from_dict(json.loads(r["data"]))
            for r in con.execute("SELECT data FROM shots ORDER BY row")]


def count_shots(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT COUNT(*) FROM shots").fetchone()[0])


def postings(con: sqlite3.Connection, terms: Iterable[str], limit: int) -> tuple[dict[str, int], dict[int, set[str]]]:
    """(document frequency per term, row -> the query terms it has), at most ``limit`` rows
    per term (the rarest terms are the informative ones; a very common term is capped)."""
    df: dict[str, int] = {}
    hits: dict[int, set[str]] = {}
    for term in sorted(set(terms)):
        df[term] = int(con.execute("SELECT COUNT(*) FROM terms WHERE term = ?", (term,)).fetchone()[0])
        for (row,) in con.execute("SELECT row FROM terms WHERE term = ? LIMIT ?", (term, limit)):
            hits.setdefault(int(row), set()).add(term)
    return df, hits


def moments_by_rows(con: sqlite3.Connection, rows: Iterable[int]) -> dict[int, Moments]:
    """The keyframe times and unit vectors of the shots at ``rows`` that have them ({} for an
    index made before they were kept)."""
    wanted = sorted({int(r) for r in rows})
    out: dict[int, Moments] = {}
    try:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in con.execute(f"SELECT row, times, vectors FROM moments WHERE row IN ({marks})",
                                 chunk):
                times = tuple(json.loads(r["times"]))
                vectors = np.frombuffer(r["vectors"], np.float16).reshape(len(times), -1)
                out[int(r["row"])] = (times, vectors)
    except sqlite3.OperationalError:  # no moments table: an index from before they were kept
        return {}
    return out


def replace_all(con: sqlite3.Connection, meta: dict, files: dict[str, dict],
                shots: list[tuple[int, LibraryShot, list[str]]],
                moments: Iterable[tuple[int, Moments]] = ()) -> None:
    """Swap in a whole new state in one transaction (see the module docstring)."""
    with con:
        con.execute("DELETE FROM meta")
        con.execute("DELETE FROM files")
        con.execute("DELETE FROM shots")
        con.execute("DELETE FROM terms")
        con.execute("DELETE FROM moments")
        _insert(con, meta, files, shots, moments)


def set_meta(con: sqlite3.Connection, values: dict) -> None:
    """Set some meta keys in one transaction (the rest of the state as it is)."""
    with con:
        con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        [(k, json.dumps(v)) for k, v in values.items()])


def touch_files(con: sqlite3.Connection, mtimes: dict[str, int]) -> None:
    """Record new modification times of files whose content did not change."""
    with con:
        con.executemany("UPDATE files SET mtime_ns = ? WHERE path = ?",
                        [(m, p) for p, m in mtimes.items()])


def is_index(folder: Path) -> bool:
    return (Path(folder) / DB_NAME).is_file()


def probe_meta(folder: Path) -> dict:
    """The meta table of the index in ``folder`` ({} if it has none or it is unreadable)."""
    if not is_index(folder):
        return {}
    try:
        with closing(connect(folder, readonly=True)) as con:
            return read_meta(con)
    except sqlite3.Error:
        return {}


def _insert(con: sqlite3.Connection, meta: dict, files: dict[str, dict],
            shots: list[tuple[int, LibraryShot, list[str]]],
            moments: Iterable[tuple[int, Moments]]) -> None:
    """Write meta, file records (replacing any of the same path), shots, their terms and
    moments: what both a whole swap and an in-place change add."""
    con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in meta.items()])
    con.executemany(
        "INSERT OR REPLACE INTO files (path, kind, size, mtime_ns, sha1, text_sig, seconds, "
        "reason) VALUES (:path, :kind, :size, :mtime_ns, :sha1, :text_sig, :seconds, :reason)",
        [{**f, "path": p} for p, f in files.items()])
    con.executemany(
        "INSERT INTO shots (id, row, path, data, terms) VALUES (?, ?, ?, ?, ?)",
        [(s.id, row, s.path, json.dumps(asdict(s), ensure_ascii=False), json.dumps(terms))
         for row, s, terms in shots])
    con.executemany("INSERT OR IGNORE INTO terms (term, row) VALUES (?, ?)",
                    [(t, row) for row, _, terms in shots for t in terms])
    con.executemany("INSERT INTO moments (row, times, vectors) VALUES (?, ?, ?)",
                    [(row, json.dumps(list(t)), np.asarray(v, np.float16).tobytes())
                     for row, (t, v) in moments])


# -- the large-library index: stable rows, changed in place (see retrieval.index.largevectors) ------
def shot_counts(con: sqlite3.Connection) -> dict[str, int]:
    """path -> how many shots of it are stored."""
    return {r[0]: int(r[1]) for r in con.execute("SELECT path, COUNT(*) FROM shots GROUP BY path")}


def rows_of_paths(con: sqlite3.Connection, paths: Iterable[str]) -> list[int]:
    """The vector rows of every shot of ``paths``."""
    out: list[int] = []
    for p in sorted(set(paths)):
        out += [int(r) for (r,) in con.execute("SELECT row FROM shots WHERE path = ?", (p,))]
    return out


def apply_changes(con: sqlite3.Connection, meta: dict, drop: Iterable[str],
                  files: dict[str, dict], shots: list[tuple[int, LibraryShot, list[str]]],
                  moments: Iterable[tuple[int, Moments]] = ()) -> None:
    """Change the state in one transaction, leaving every other shot and row as it is: the
    shots (terms, moments) of the ``drop`` paths go, and their file records unless ``files``
    has them; ``files`` are written (replaced), ``shots`` added at their rows, ``meta`` swapped."""
    drop = sorted(set(drop))
    with con:
        for p in drop:
            inner = "SELECT row FROM shots WHERE path = ?"
            con.execute(f"DELETE FROM terms WHERE row IN ({inner})", (p,))
            con.execute(f"DELETE FROM moments WHERE row IN ({inner})", (p,))
            con.execute("DELETE FROM shots WHERE path = ?", (p,))
            if p not in files:
                con.execute("DELETE FROM files WHERE path = ?", (p,))
        con.execute("DELETE FROM meta")
        _insert(con, meta, files, shots, moments)


def renumber_rows(con: sqlite3.Connection, old: np.ndarray, meta: dict) -> None:
    """After a compaction: the shot at row ``old[i]`` moves to row ``i`` (``old`` ascending,
    every live row listed), in one transaction with the new ``meta``."""
    with con:
        con.execute("CREATE TEMP TABLE IF NOT EXISTS renumber (old INTEGER PRIMARY KEY, "
                    "new INTEGER NOT NULL)")
        con.execute("DELETE FROM renumber")
        con.executemany("INSERT INTO renumber (old, new) VALUES (?, ?)",
                        ((int(r), i) for i, r in enumerate(old)))
        for table in ("shots", "terms", "moments"):  # through negatives: rows stay unique
            con.execute(f"UPDATE {table} SET row = -1 - (SELECT new FROM renumber "
                        f"WHERE old = {table}.row)")
            con.execute(f"UPDATE {table} SET row = -1 - row WHERE row < 0")
        con.execute("DELETE FROM renumber")
        con.execute("DELETE FROM meta")
        con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                        [(k, json.dumps(v)) for k, v in meta.items()])
