"""A generated clip as a retrieval candidate, measured as footage is, so it competes fairly.

The clip's path is absolute (it lives in the project cache, not the library); its id says it was
generated and for which shot, so edit.otio and the report can tell it apart. Everything the
optimizer weighs is measured on the clip itself by the index's own code
(:func:`retrieval.measure_outside`: features, faces, its vector and labels) and its score for
the shot's query is computed exactly as a library hit's (:func:`retrieval.score_outside`),
never assumed from what it was asked to show.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from retrieval.types import Hit, LibraryShot, MeasuredClip, features_from_dict
from generator.types import Character, GeneratedClip, GenerationRequest

GENERATED_PREFIX = "generated:"
STAND_IN = "stand-in"  # the label of a stand-in fill (generator.standin) wherever it shows
MEASURE_VERSION = 1


def measure(clip: GeneratedClip, index, text: str = "") -> MeasuredClip:
    """The clip measured as ``index`` (a :class:`retrieval.FootageIndex`) measures its shots;
    ``text``: its own words, as a library file's name and tags are (a stand-in carries those of
    the footage its background is a frame of: that footage is what it shows).

    Kept beside the clip (``<clip>.measured.json``, stamped with the file's size and time, the
    words, the embedder and the index's shot settings), so a recut that reuses the clip
    neither decodes nor embeds it again (about 0.5 to 1 s a clip on 2 cores).
    """
    from retrieval import measure_outside

    path = Path(clip.path)
    saved = path.with_name(path.name + ".measured.json")
    stamp = _stamp(path, index, text)
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
        if data["stamp"] == stamp:
            m = data["measured"]
            return MeasuredClip(embedder=m["embedder"], vector=tuple(m["vector"]),
                                labels=tuple(m["labels"]), terms=tuple(m["terms"]),
                                features=features_from_dict(m["features"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    measured = measure_outside(index, path, text)
    try:
        tmp = saved.with_name(f".{saved.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "measured": asdict(measured)}),
                       encoding="utf-8")
        tmp.replace(saved)
    except OSError:
        pass  # a read-only cache only costs the measuring next time
    return measured


def _stamp(path: Path, index, text: str) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    settings = json.dumps(index.meta.get("settings"), sort_keys=True)
    return (f"{MEASURE_VERSION}:{st.st_size}:{st.st_mtime_ns}:{index.embedder_name}:{settings}:"
            f"{text}")


def kind_label(clip: GeneratedClip) -> str:
    """What a viewer is told the fill is: a stand-in, or a generated picture."""
    return STAND_IN if clip.backend == "standin" else "generated"


def generated_shot(clip: GeneratedClip, request: GenerationRequest,
                   measured: MeasuredClip | None = None) -> LibraryShot:
    """A LibraryShot for the clip: id ``generated:<shot id>:<file stem>``, absolute path,
    the measured features and labels (after its kind: "stand-in" or "generated")."""
    fps = float(request.fps)
    labels = (kind_label(clip), clip.backend) + (measured.labels if measured else ())
    return LibraryShot(id=f"{GENERATED_PREFIX}{request.shot_id}:{Path(clip.path).stem}",
                       path=clip.path, kind="video", start=0.0, end=clip.frames / fps,
                       width=request.width, height=request.height, fps=fps,
                       labels=tuple(dict.fromkeys(labels)),
                       features=measured.features if measured else None)


def generated_hit(clip: GeneratedClip, request: GenerationRequest, score: float,
                  measured: MeasuredClip | None = None) -> Hit:
    """The clip as a Hit with its measured ``score`` (see :func:`retrieval.score_outside`)."""
    return Hit(shot=generated_shot(clip, request, measured), score=float(score))


def is_generated(shot: LibraryShot) -> bool:
    return shot.id.startswith(GENERATED_PREFIX)


def shows(character: Character, measured: MeasuredClip, same: float) -> bool | None:
    """Whether the clip shows the character's face: a face within ``same`` (dlib distance) of
    their descriptor (None: the character has no known face to look for)."""
    import numpy as np

    if character.descriptor is None:
        return None
    me = np.asarray(character.descriptor, np.float64)
    return any(float(np.linalg.norm(np.asarray(d, np.float64) - me)) < same
               for d in measured.features.face_descriptors if len(d) == len(me))
