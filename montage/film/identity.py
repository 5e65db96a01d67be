"""Identity, measured on the film: does each character look like their reference photo?

For every character with a reference photo (cast.toml), each shot whose sentence names them is
looked at in the rendered film: three frames (at a quarter, half and three quarters of the
shot), faces found and described by dlib as the index does (:func:`retrieval.analysis.
detect_faces`). The shot shows the character when a face within dlib's usual threshold (0.6)
of their reference descriptor is in at least two of the three frames. The report gives, per
character, the share of their retrieved and generated shots that show them (title cards are
counted apart: they show nobody by design). Results are kept in the project's cache by what
the shot shows (its clip, trim and the film's size), so a recut looks only at changed shots.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Mapping

import numpy as np

from planner.shots import ShotPlan

from montage.optimize import EditDecisionList

SAME_PERSON = 0.6  # dlib's usual threshold (retrieval.analysis.faces.SAME_PERSON)
LOOKS = (0.25, 0.5, 0.75)  # where in each shot the film is looked at
NEEDED = 2  # frames of the three that must show the face


@dataclass(frozen=True)
class Identity:
    """One character's shots in one film, and which of them show their face."""

    name: str
    shots: tuple[str, ...]  # shot ids whose sentence names them, film order
    sources: tuple[str, ...]  # each shot's source: "library", "generated", "placeholder"
    matched: tuple[bool, ...]  # each shot shows their face (cards: False)
    distances: tuple[float | None, ...]  # each shot's closest face (None: no face)

    def counted(self, source: str | None = None) -> list[int]:
        """Indexes of the retrieved and generated shots (or only ``source``'s)."""
        return [i for i, s in enumerate(self.sources)
                if s != "placeholder" and (source is None or s == source)]

    @property
    def share(self) -> float | None:
        shown = self.counted()
        return sum(self.matched[i] for i in shown) / len(shown) if shown else None


def measure_identity(film: Path, edl: EditDecisionList, plan: ShotPlan,
                     faces: Mapping[str, tuple[float, ...]], cache: Path | None = None
                     ) -> list[Identity]:
    """Per character in ``faces`` (name -> reference descriptor), their shots in ``film``."""
    if not faces:
        return []
    from retrieval.analysis import detect_faces
    from retrieval.media import read_frames

    names = {s.id: s.characters for s in plan.shots}
    starts = dict(zip((d.shot_id for d in edl.decisions), edl.starts()))
    kept = _load(cache)
    found: dict[str, list[tuple[float, ...]]] = {}
    for d in edl.decisions:
        if d.source == "placeholder" or not any(n in faces for n in names.get(d.shot_id, ())):
            continue
        key = _key(d, edl)
        if key not in kept:
            times = [float((starts[d.shot_id] + Fraction(d.frames) * f) / edl.rate) for f in LOOKS]
            kept[key] = [[f.descriptor for f in detect_faces(frame) if f.descriptor]
                         for frame in read_frames(film, times)]
        found[d.shot_id] = kept[key]
    _save(cache, kept)
    out = []
    for name, ref in faces.items():
        me = np.asarray(ref, np.float64)
        shots, sources, matched, distances = [], [], [], []
        for d in edl.decisions:
            if name not in names.get(d.shot_id, ()):
                continue
            per_frame = [min((float(np.linalg.norm(np.asarray(x, np.float64) - me))
                              for x in frame), default=None) for frame in found.get(d.shot_id, [])]
            near = [x for x in per_frame if x is not None]
            shots.append(d.shot_id)
            sources.append(d.source)
            distances.append(round(min(near), 3) if near else None)
            matched.append(sum(x < SAME_PERSON for x in near) >= NEEDED)
        out.append(Identity(name, tuple(shots), tuple(sources), tuple(matched), tuple(distances)))
    return out


def identity_lines(found: list[Identity]) -> list[str]:
    """Markdown lines for the report."""
    lines = []
    for c in found:
        shown = c.counted()
        if not c.shots:
            lines.append(f"- **{c.name}**: named in no shot")
            continue
        parts = []
        for source, word in (("library", "retrieved"), ("generated", "generated")):
            idx = c.counted(source)
            if idx:
                parts.append(f"{sum(c.matched[i] for i in idx)}/{len(idx)} {word}")
        cards = len(c.shots) - len(shown)
        share = f"{100 * c.share:.0f}%" if c.share is not None else "n/a"
        missed = [f"{c.shots[i]} ({'no face' if c.distances[i] is None else f'{c.distances[i]:.2f}'})"
                  for i in shown if not c.matched[i]]
        lines.append(f"- **{c.name}**: {share} of their shots show their face ("
                     + (", ".join(parts) or "none shown") + (f"; {cards} title card{'s' if cards > 1 else ''}" if cards else "")
                     + ")" + (f"; not them: {', '.join(missed)}" if missed else ""))
    return lines


def _key(d, edl: EditDecisionList) -> str:
    raw = f"{d.library_shot}|{d.media}|{d.source_in}|{d.frames}|{edl.width}x{edl.height}|{edl.rate}"
    return hashlib.sha1(raw.encode()).hexdigest()[:20]


def _load(cache: Path | None) -> dict:
    if cache is None:
        return {}
    try:
        data = json.loads((cache / "identity.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(cache: Path | None, kept: dict) -> None:
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".identity.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(kept), encoding="utf-8")
        tmp.replace(cache / "identity.json")
    except OSError:
        pass  # an unwritable cache costs the next report a look at the film
