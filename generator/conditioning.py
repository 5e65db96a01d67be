"""What a generated shot is conditioned on, decided the same way for every backend.

The prompt is the shot's text plus each character's description; the noise seed is the first
character's fixed seed (so a character starts from the same noise in every shot) or the
request's; the identity is that character's face descriptor; the init image is a frame of the
best near-miss library shot, preferring one that shows the character (SDEdit keeps the film's
look, and the person's); a stand-in's background prefers shots that show no face
(:func:`rank_inputs`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from retrieval.types import Hit, LibraryShot
from generator.cast import face_distance, resolve_identity
from generator.errors import GenerationFailed
from generator.types import Character, GenerationRequest

def members(request: GenerationRequest) -> tuple[Character, ...]:
    """The shot's characters with identities resolved from their reference images."""
    return tuple(resolve_identity(c) for c in request.members())


def full_prompt(request: GenerationRequest, cast: Sequence[Character]) -> str:
    """The shot text, then 'Name: description' for each character that has a description."""
    parts = [request.prompt.strip() or request.query.strip()]
    parts += [f"{c.name}: {c.description}" for c in cast if c.description]
    return ". ".join(p.rstrip(".") for p in parts if p) + "."


def condition_text(request: GenerationRequest, cast: Sequence[Character]) -> str:
    """What the builtin model's text vector encodes: visible words (like its label captions)
    plus descriptions; the full prompt when the planner found no visible words."""
    base = request.query.strip() or request.prompt.strip()
    return ", ".join([base] + [c.description for c in cast if c.description])


def effective_seed(request: GenerationRequest, cast: Sequence[Character]) -> int:
    return int(cast[0].seed) if cast else int(request.seed)


def identity(cast: Sequence[Character]) -> np.ndarray | None:
    """The first character with a known face's descriptor (None: no identity condition)."""
    for c in cast:
        if c.descriptor is not None:
            return np.asarray(c.descriptor, np.float32)
    return None


def load_init(request: GenerationRequest) -> np.ndarray | None:
    """The init image as RGB uint8 (GenerationFailed if it is not a readable image)."""
    if request.init_image is None:
        return None
    from planner.errors import MediaError
    from retrieval.media import read_still

    try:
        return read_still(Path(request.init_image))
    except MediaError as exc:
        raise GenerationFailed(f"shot {request.shot_id}: init image unusable ({exc.message})") from None


def pick_init_hit(hits: Sequence[Hit], cast: Sequence[Character]) -> Hit | None:
    """The best-scoring hit that shows the shot's first known character, else the best hit."""
    if not hits:
        return None
    known = [c for c in cast if c.descriptor is not None]
    if known:
        showing = [h for h in hits
                   if (d := face_distance(known[0], h.shot)) is not None and d < 0.6]
        if showing:
            return max(showing, key=lambda h: h.score)
    return max(hits, key=lambda h: h.score)


def rank_inputs(hits: Sequence[Hit], cast: Sequence[Character], *, clear: bool,
                n: int, avoid: frozenset[str] = frozenset()) -> list[Hit]:
    """The library shots a backend starts from, best first, at most ``n``, none in ``avoid``
    (shots the film already shows elsewhere: a stand-in of one would show it twice).

    ``clear`` (a stand-in that places the cast): shots that show no face first, as a stranger's
    face beside the character's would be taken for theirs, then by score. Otherwise (SDEdit):
    shots showing the first known character first (:func:`pick_init_hit`), then by score.
    """
    hits = [h for h in hits if h.shot.id not in avoid]
    if clear and any(c.descriptor is not None or c.portraits for c in cast):
        order = sorted(hits, key=lambda h: (bool(h.shot.features and h.shot.features.faces),
                                            -h.score))
    else:
        first = pick_init_hit(hits, cast)
        order = ([first] if first else []) + sorted((h for h in hits if h is not first),
                                                    key=lambda h: -h.score)
    return order[:max(0, n)]


def hit_frame(library: Path, hit: Hit, out_dir: Path) -> Path:
    """The frame of a hit where it best matches its query (its moment), else its middle."""
    shot = hit.shot
    at = 0.5
    if hit.moment is not None and not shot.is_still and shot.end > shot.start:
        at = round(min(0.95, max(0.05, (hit.moment - shot.start) / (shot.end - shot.start))), 3)
    return init_frame(library, shot, out_dir, at=at)


def init_frame(library: Path, shot: LibraryShot, out_dir: Path, at: float = 0.5) -> Path:
    """The frame at ``at`` of a library shot's length (a still: the still) as a PNG under
    ``out_dir``, reused if already there. MediaError if the footage cannot be read."""
    import hashlib

    from PIL import Image

    from retrieval.media import read_frames, read_still

    where = f"|{at}" if at != 0.5 else ""  # the middle frame keeps its old name
    key = hashlib.sha1(f"{shot.id}|{shot.start}|{shot.end}{where}".encode()).hexdigest()[:16]
    path = Path(out_dir) / f"init-{key}.png"
    if path.is_file():
        return path
    src = Path(library) / shot.path
    frame = (read_still(src) if shot.is_still
             else read_frames(src, [shot.start + (shot.end - shot.start) * at])[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(frame).save(tmp)
    tmp.replace(path)
    return path
