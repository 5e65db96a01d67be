"""Plain data that leaves the retrieval stage: library shots, hits, and per-shot candidates."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

CANDIDATES_VERSION = 1


@dataclass(frozen=True)
class LibraryShot:
    """One shot of the footage library: a span of a video, or a whole still.

    ``path`` is relative to the library root (POSIX separators). Stills have ``start == end
    == 0.0`` and can fill a planned shot of any length.
    """

    id: str  # "<path>#<n>", n = 0-based shot number inside the file
    path: str
    kind: str  # "video" | "still"
    start: float  # seconds from the start of the file
    end: float  # seconds; == start for stills
    width: int
    height: int
    fps: float  # source frame rate; 0.0 for stills
    labels: tuple[str, ...] = ()  # words that describe it (classifier labels, tags, file name)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def is_still(self) -> bool:
        return self.kind == "still"


@dataclass(frozen=True)
class Hit:
    """A library shot ranked for one query; higher ``score`` is a better match (cosine-like)."""

    shot: LibraryShot
    score: float


@dataclass(frozen=True)
class ShotCandidates:
    """The ranked hits for one planned shot."""

    shot_id: str
    query: str
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class CandidateSet:
    """Candidates for every planned shot, with the library and embedder they came from."""

    library: str  # absolute path of the library root
    embedder: str
    shots: tuple[ShotCandidates, ...]

    def to_json(self) -> str:
        data = {
            "version": CANDIDATES_VERSION,
            "library": self.library,
            "embedder": self.embedder,
            "shots": [
                {
                    "shot_id": c.shot_id,
                    "query": c.query,
                    "hits": [{"score": h.score, "shot": asdict(h.shot)} for h in c.hits],
                }
                for c in self.shots
            ],
        }
        return json.dumps(data, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "CandidateSet":
        data = json.loads(text)
        shots = tuple(
            ShotCandidates(
                shot_id=c["shot_id"],
                query=c["query"],
                hits=tuple(
                    Hit(
                        shot=LibraryShot(**{**h["shot"], "labels": tuple(h["shot"]["labels"])}),
                        score=float(h["score"]),
                    )
                    for h in c["hits"]
                ),
            )
            for c in data["shots"]
        )
        return cls(library=data["library"], embedder=data["embedder"], shots=shots)
