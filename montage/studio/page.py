"""The current cut as the page shows it: one row per shot (its clip, why it won, its
candidates, what changed since the last cut), and the media ids the page may ask for.

Media are named by id, never by path: :class:`Media` is what an id stands for, and the server
serves it only from the project and the library (``montage.studio.session.Studio.media``).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from planner.shots import ShotPlan
from retrieval.types import CandidateSet

from montage.film import read_timeline
from montage.optimize import EditDecisionList, confidence_text
from montage.pipeline import read_changes
from montage.project import (EDITABLE, NAMES, Choices, Settings, settings_value,
                             show_value)

CANDIDATES_SHOWN = 8


@dataclass(frozen=True)
class Media:
    """A file the page may ask for, by id: never by a path taken from the request."""

    path: Path
    kind: str  # "video" | "still"
    at: float  # seconds into the file of the frame that stands for it
    start: float
    end: float


def cut_view(folder: Path, text: str, choices: Choices,
             library: Path) -> tuple[ShotPlan, EditDecisionList, list[dict], dict[str, Media]]:
    """The cut kept in ``folder`` (a history folder: never changed once written), its shots as
    the page shows them, and the media their ids name."""
    plan = ShotPlan.load(folder / "plan.json")
    edl = read_timeline(folder / "edit.otio")
    cands = CandidateSet.from_json((folder / "candidates.json").read_text(encoding="utf-8"))
    changes = read_changes(folder)
    media: dict[str, Media] = {}
    by_shot = {c.shot_id: c for c in cands.shots}
    holder = {d.library_shot: (n, d.shot_id)
              for n, d in enumerate(edl.decisions, 1) if d.library_shot}
    spans = script_spans(text, plan)
    rate = edl.rate
    shots = []
    for n, (p, d, start) in enumerate(zip(plan.shots, edl.decisions, edl.starts()), 1):
        hits = by_shot.get(p.id).hits if p.id in by_shot else ()
        cal = by_shot[p.id].calibration if p.id in by_shot else None
        cands_out = []
        for h in hits[:CANDIDATES_SHOWN]:
            token = _register(media, library, h.shot.id, h.shot.path, h.shot.kind, h.moment,
                              h.shot.start, h.shot.end)
            owner = holder.get(h.shot.id)
            cands_out.append({"clip": h.shot.id, "score": round(h.score, 3), "kind": h.shot.kind,
                              "confidence": round(cal.confidence(h.score), 2) if cal else None,
                              "media": token, "chosen": h.shot.id == d.library_shot,
                              "banned": h.shot.id in choices.bans,
                              "generated": h.shot.id.startswith("generated:"),
                              "seconds": round(h.shot.end - h.shot.start, 2),
                              # another shot holds it: using it here is a swap
                              "used_by": ({"n": owner[0], "id": owner[1]}
                                          if owner is not None and owner[1] != p.id else None)})
        token = None
        if d.library_shot:
            mid = float(Fraction(d.source_in) / rate + Fraction(d.frames, 2) / rate)
            token = _register(media, library, d.library_shot, d.media, d.kind,
                              mid if d.kind == "video" else None, 0.0, 0.0)
        at = float(Fraction(start) / rate)
        shots.append({
            "n": n, "id": p.id, "text": p.text, "scene": p.scene, "line": p.line,
            "span": spans.get(p.id), "start": round(at, 3),
            "seconds": round(float(Fraction(d.frames) / rate), 3),
            "source": d.source, "kind": d.kind, "clip": d.library_shot, "media": token,
            "score": round(d.score, 3), "reason": d.reason, "runner_up": d.runner_up,
            "confidence": d.confidence, "bar": d.bar, "confidence_text": confidence_text(d),
            "decided_by": d.decided_by, "bends": list(d.bends),
            "costs": [[t, round(v, 3)] for t, v in d.costs if v], "fill": _fill_facts(d),
            "pinned": choices.pins.get(p.id), "trimmed": p.id in choices.trims,
            "status": changes.get(p.id, ("", ""))[0],
            "previous": changes.get(p.id, ("", ""))[1] or None,
            "file": Path(d.media).name if d.media else None,
            "candidates": cands_out})
    return plan, edl, shots, media


def _fill_facts(d) -> dict | None:
    """How a generated clip in the film measured (from its provenance), for the inspector."""
    if d.source != "generated" or not d.provenance:
        return None
    p = dict(d.provenance)
    return {"kind": "stand-in" if p.get("stand_in") == "yes" else "generated",
            **{k: p.get(k, "") for k in ("backend", "measured", "query", "made_from", "fills",
                                         "runner_up", "best_footage")}}


def settings_view(current: Settings, project: Path) -> list[dict]:
    """The settings the next cut uses, for the page: each with its JSON value (what the page
    sends back to change it) and as a person reads it."""
    return [{"name": name, "shown": show_value(getattr(current, name)),
             "value": settings_value(current, name, project), "editable": name in EDITABLE}
            for name in NAMES]


def _register(media: dict[str, Media], library: Path, clip: str, path: str, kind: str,
              at: float | None, start: float, end: float) -> str:
    token = hashlib.sha1(f"{clip}|{at}".encode()).hexdigest()[:16]
    if token not in media:
        full = Path(path)
        if not full.is_absolute():
            full = library / full
        mid = at if at is not None else (start + end) / 2
        media[token] = Media(path=full, kind="still" if kind == "still" else "video",
                             at=mid if kind != "still" else 0.0, start=start, end=end)
    return token


def script_spans(text: str, plan: ShotPlan) -> dict[str, list[int]]:
    """Where each shot's text stands in the script ([start, end) characters), found in order;
    whitespace may differ (the planner folds line breaks). Shots not found are left out."""
    spans: dict[str, list[int]] = {}
    pos = 0
    for shot in plan.shots:
        words = shot.text.split()
        if not words:
            continue
        pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
        m = pattern.search(text, pos)
        if m is None:
            continue
        spans[shot.id] = [m.start(), m.end()]
        pos = m.end()
    return spans
