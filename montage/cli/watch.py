"""`montage watch`: recut the film every time the script is saved.

Polls the script (no extra dependency, works on every file system); models and the index stay
loaded in the Recutter, so a one-sentence edit costs a re-plan of one paragraph, a search for
one query, a small re-solve and the encoding of the clips that changed.
"""
from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path
from typing import Callable

from planner.errors import MontageError

from montage.pipeline import MakeResult, Recutter


def _fingerprint(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None


def describe(result: MakeResult) -> str:
    t = result.timings
    edit = sum(t.get(k, 0.0) for k in ("plan", "index", "search", "optimize", "edit"))
    return (f"cut {result.cut}: {result.changes}; {result.kept} shots kept their clip; "
            f"edit in {edit:.2f} s, film in {t.get('render', 0.0):.1f} s "
            f"({result.encoded} clips encoded) -> {result.film}")


def watch(recutter: Recutter, script: Path, out: Path, *, poll: float = 0.25,
          stop: threading.Event | None = None,
          on_cut: Callable[[MakeResult | MontageError], None] | None = None) -> None:
    """Cut now, then again after each change of ``script``, until ``stop`` is set or Ctrl-C.

    A bad edit (an empty script, say) prints its error and keeps watching: the previous film
    and state stay as they were.
    """
    stop = stop or threading.Event()
    seen: str | None = None
    while not stop.is_set():
        now = _fingerprint(script)
        if now is not None and now != seen:
            seen = now
            try:
                result = recutter.cut(script, out)
                print(describe(result), file=sys.stderr, flush=True)
                if on_cut:
                    on_cut(result)
            except MontageError as exc:
                print(f"error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""),
                      file=sys.stderr, flush=True)
                if on_cut:
                    on_cut(exc)
        stop.wait(poll)
