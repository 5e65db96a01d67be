"""Plain data between the pipeline and the generators: who is in a shot, what to make, what came out.

Frozen dataclasses, like every contract between stages; a generator is anything with the
``Generator`` protocol's shape, built by ``generator.make_generator(spec)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

from generator.errors import GenerationFailed

DESCRIPTOR_DIM = 128  # dlib face descriptor
FILL_TRIES = 2  # fills each generator makes per shot by default (seeds x library frames); the
# best by measured score is kept. Two: a stand-in of a 3 s 720p shot costs about 1 s of CPU
# and measuring it another 0.5 to 1 s; the builtin model several seconds (bench/generator.py)


@dataclass(frozen=True)
class Character:
    """A named person of the film and what fixes their look across generated shots.

    ``descriptor`` is a 128-d dlib face descriptor: from ``references`` (images of the person)
    or, without them, from the face cluster of the library shots chosen for the character.
    ``portraits`` are images that show that face (the references, or library frames of the
    cluster): the face pass lays the character's face into generated frames from them.
    """

    name: str
    description: str = ""  # a prompt fragment, e.g. "a woman in her thirties with short red hair"
    references: tuple[str, ...] = ()  # absolute paths of reference images
    seed: int = 0
    descriptor: tuple[float, ...] | None = None
    portraits: tuple[str, ...] = ()  # absolute paths of images showing the character's face


@dataclass(frozen=True)
class GenerationRequest:
    """One shot to generate, at the film's size and rate."""

    shot_id: str
    prompt: str  # the shot's text (the generator adds the characters' descriptions)
    query: str  # the planner's visible words
    characters: tuple[str, ...]  # names in the shot, as in the plan
    seconds: float
    width: int
    height: int
    rate: str  # "25" or "30000/1001"
    seed: int
    init_image: str | None = None  # nearest library frame (SDEdit starts from it)
    cast: tuple[Character, ...] = ()  # the film's cast (only those in ``characters`` are used)

    @property
    def fps(self) -> Fraction:
        return Fraction(self.rate)

    @property
    def frames(self) -> int:
        """Frames the clip must have: round(seconds * rate), at least 1."""
        return max(1, round(self.seconds * self.fps))

    def members(self) -> tuple[Character, ...]:
        """The cast members in this shot, in the order the shot names them."""
        by_name = {c.name.lower(): c for c in self.cast}
        return tuple(by_name[n.lower()] for n in self.characters if n.lower() in by_name)


@dataclass(frozen=True)
class GeneratedClip:
    """A generated .mp4 at the request's size and rate, with what is needed to make it again."""

    path: str
    frames: int
    backend: str  # "builtin" | "diffusers"
    model: str  # weights file or model folder / hub id
    seed: int
    prompt: str  # the full prompt used (shot text plus character descriptions)
    references: tuple[str, ...]  # reference images (and init image) it was conditioned on
    seconds_taken: float  # wall seconds the generation took (when it was made)
    cached: bool = False  # True when this call found it in the cache


@runtime_checkable
class Generator(Protocol):
    """Makes one clip per request; results are cached under ``cache_dir`` by request + model."""

    backend: str
    model: str
    # whether its fills can show a recognisable face: one that cannot (the builtin model, 48x27
    # pixels) is not asked for shots that name a character with a known face
    draws_faces: bool

    def identity(self) -> str:
        """Identifies the model and its settings, for cache keys."""

    def generate(self, request: GenerationRequest, *, cache_dir: Path,
                 progress: bool = True) -> GeneratedClip: ...


MAX_SIDE = 8192


def check_request(request: GenerationRequest) -> None:
    """GenerationFailed naming the argument and its bad value (never a bare assert)."""
    def bad(what: str) -> GenerationFailed:
        return GenerationFailed(f"shot {request.shot_id}: {what}")

    try:
        rate = Fraction(request.rate)
    except (ValueError, ZeroDivisionError, TypeError):
        raise bad(f"rate must look like '25' or '30000/1001', got {request.rate!r}") from None
    if not 0 < rate <= 240:
        raise bad(f"rate must be between 0 and 240, got {request.rate!r}")
    if not request.seconds > 0:
        raise bad(f"seconds must be positive, got {request.seconds!r}")
    for name in ("width", "height"):
        v = getattr(request, name)
        if not isinstance(v, int) or v < 16 or v > MAX_SIDE or v % 2:
            raise bad(f"{name} must be an even number of pixels from 16 to {MAX_SIDE}, got {v!r}")
    if not request.prompt.strip() and not request.query.strip():
        raise bad("prompt and query are both empty")
    if request.init_image is not None and not Path(request.init_image).is_file():
        raise bad(f"init_image does not exist: {request.init_image}")
