"""A generated clip as a retrieval candidate, so the optimizer weighs it like any library shot.

The clip's path is absolute (it lives in the project cache, not the library); its id says it was
generated and for which shot, so edit.otio and the report can tell it apart. Its features are
measured on the clip itself (tone, colour, faces) with the same code as the index, never
assumed from what it was asked to show.
"""
from __future__ import annotations

from pathlib import Path

from retrieval.types import Hit, LibraryShot, ShotFeatures
from generator.types import GeneratedClip, GenerationRequest

GENERATED_PREFIX = "generated:"


def measure(clip: GeneratedClip) -> ShotFeatures:
    """Tone, colours and faces of the clip's middle frame, as the index measures footage.

    Measured once per clip file and kept beside it (``<clip>.features.json``, stamped with the
    file's size and time), so a recut that reuses the clip does not decode it and look for
    faces again (about 0.3 s a clip on 2 cores).
    """
    import json
    import os
    from dataclasses import asdict

    from retrieval.types import features_from_dict

    path = Path(clip.path)
    saved = path.with_name(path.name + ".features.json")
    try:
        st = path.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        data = json.loads(saved.read_text(encoding="utf-8"))
        if data["stamp"] == stamp:
            return features_from_dict(data["features"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    features = _measure(path)
    try:
        st = path.stat()
        tmp = saved.with_name(f".{saved.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"stamp": f"{st.st_size}:{st.st_mtime_ns}",
                                   "features": asdict(features)}), encoding="utf-8")
        tmp.replace(saved)
    except OSError:
        pass  # a read-only cache only costs the measuring next time
    return features


def _measure(path: Path) -> ShotFeatures:
    from retrieval.analysis import detect_faces, shot_scale
    from retrieval.analysis import dominant_colors, histogram, tone
    from retrieval.media import probe, read_frames

    frame = read_frames(path, [probe(path).duration / 2])[0]
    faces = detect_faces(frame)
    share = faces[0].height / frame.shape[0] if faces else 0.0
    return ShotFeatures(**tone([frame]), histogram=histogram([frame]),
                        colors=dominant_colors([frame]), faces=len(faces),
                        face_size=round(share, 4), scale=shot_scale(share),
                        face_descriptors=tuple(f.descriptor for f in faces if f.descriptor))


def generated_shot(clip: GeneratedClip, request: GenerationRequest, *,
                   analyse: bool = True) -> LibraryShot:
    """A LibraryShot for the clip: id ``generated:<shot id>:<file stem>``, absolute path."""
    fps = float(request.fps)
    return LibraryShot(id=f"{GENERATED_PREFIX}{request.shot_id}:{Path(clip.path).stem}",
                       path=clip.path, kind="video", start=0.0, end=clip.frames / fps,
                       width=request.width, height=request.height, fps=fps,
                       labels=("generated", clip.backend),
                       features=measure(clip) if analyse else None)


def generated_hit(clip: GeneratedClip, request: GenerationRequest, score: float, *,
                  analyse: bool = True) -> Hit:
    """The clip as a Hit with ``score`` (the caller decides: e.g. the rule set's threshold)."""
    return Hit(shot=generated_shot(clip, request, analyse=analyse), score=float(score))


def is_generated(shot: LibraryShot) -> bool:
    return shot.id.startswith(GENERATED_PREFIX)
