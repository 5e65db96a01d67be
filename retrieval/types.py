"""Plain data that leaves the retrieval stage: library shots, hits, and per-shot candidates."""
from __future__ import annotations

import json
from dataclasses import dataclass

CANDIDATES_VERSION = 2  # 2: each shot's calibration (1: raw scores only, searched again)
MIN_SD = 1e-6  # a query's scores spread less than this over the library: nothing stands out


SCALES = ("close-up", "medium", "wide", "unknown")  # shot scale from the largest face
CAMERA_MOVES = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out",
                "handheld")


@dataclass(frozen=True)
class ShotFeatures:
    """What the rule optimizer needs to know about a library shot, measured at index time.

    Every number is normalised so that rule weights mean the same on any footage.
    """

    brightness: float = 0.5  # mean luma, 0 (black) .. 1 (white)
    contrast: float = 0.0  # luma standard deviation, 0 .. ~0.5
    saturation: float = 0.0  # mean HSV saturation, 0 .. 1
    sharpness: float = 0.0  # focus: 0 (blurred) .. 1 (crisp), from the Laplacian's variance
    stability: float = 1.0  # 1 = rock steady .. 0 = very shaky (residual jitter of the camera path)
    motion: float = 0.0  # mean motion per second as a share of the frame diagonal (0 for stills)
    camera: str = "static"  # dominant camera movement, one of CAMERA_MOVES
    histogram: tuple[float, ...] = ()  # colour histogram (e.g. 3 x 8 bins of R, G, B), sums to 1
    colors: tuple[tuple[int, int, int], ...] = ()  # dominant colours, most common first
    faces: int = 0  # faces in the best keyframe
    face_size: float = 0.0  # largest face height / frame height
    scale: str = "unknown"  # one of SCALES
    people: int = 0  # people found by a person detector
    face_descriptors: tuple[tuple[float, ...], ...] = ()  # one 128-d dlib descriptor per face


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
    features: ShotFeatures | None = None  # None: not analysed (an index built before analysis)

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
    # the keyframe of the shot that matches the query best (seconds into the file), so a long
    # shot is trimmed around what was asked for; None for stills, one-keyframe shots, indexes
    # built before moments were kept, and keyword-only searches
    moment: float | None = None


@dataclass(frozen=True)
class QueryCalibration:
    """Where one query's raw scores stand in the whole library, so that any raw score of that
    query (a library hit's, a generated clip's scored the same way) reads as a confidence that
    means the same for every query, library and embedder: how many standard deviations it
    stands above the query's scores over every shot of the library.

    ``mean`` and ``sd`` are the query's embedding scores over the library, from the sums the
    index keeps (:mod:`retrieval.index.calibration`); ``unrelated`` and ``unrelated_sd`` say
    how far the best hit of an unrelated sentence stands (the median and spread over a fixed
    set of probe sentences scored against the same library), the yardstick of a card bar.
    """

    mean: float
    sd: float
    unrelated: float  # sd: where the best hit of an unrelated sentence stands (median)
    unrelated_sd: float  # sd: the spread of that (MAD-based)
    shots: int = 0  # library shots the statistics are over

    def confidence(self, raw: float) -> float:
        """sd above the library for this query: ``(raw - mean) / sd`` (0 without a spread:
        in a library of one shot, or of identical ones, nothing stands out)."""
        return 0.0 if self.sd < MIN_SD else (float(raw) - self.mean) / self.sd

    def raw(self, confidence: float) -> float:
        """The raw score that stands ``confidence`` sd above the library (the inverse)."""
        return self.mean + float(confidence) * self.sd

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "unrelated": self.unrelated,
                "unrelated_sd": self.unrelated_sd, "shots": self.shots}

    @classmethod
    def from_dict(cls, data: dict | None) -> "QueryCalibration | None":
        return None if data is None else cls(**{k: data[k] for k in (
            "mean", "sd", "unrelated", "unrelated_sd", "shots")})


@dataclass(frozen=True)
class MeasuredClip:
    """A clip from outside the library (a generated one) as the index would have it: analysed
    and embedded by the same code, as one shot. ``search.score_outside`` scores it against a
    query exactly as a library shot is scored, so its score sits on the same scale."""

    embedder: str  # the embedder's name (a measurement is only comparable within one)
    vector: tuple[float, ...]  # unit vector: the mean of its keyframes' vectors
    labels: tuple[str, ...]  # the words it is labelled with (classifier, people)
    terms: tuple[str, ...]  # their lemmas, for keyword matching
    features: ShotFeatures  # tone, focus, motion, faces..., as the index measures a shot


@dataclass(frozen=True)
class ShotCandidates:
    """The ranked hits for one planned shot, and what calibrates any raw score of its query
    (None: from an index without calibration, or candidates.json of montage before it)."""

    shot_id: str
    query: str
    hits: tuple[Hit, ...]
    calibration: QueryCalibration | None = None


@dataclass(frozen=True)
class CandidateSet:
    """Candidates for every planned shot, with the library and embedder they came from."""

    library: str  # absolute path of the library root
    embedder: str
    shots: tuple[ShotCandidates, ...]

    def to_json(self) -> str:
        """One hit a line: readable, and written by json's C encoder (an indented dump runs
        its pure-Python one, 0.9 s for a 75-shot film's candidates)."""
        def dump(value) -> str:
            return json.dumps(value, ensure_ascii=False)

        shots = []
        for c in self.shots:
            hits = ",\n    ".join(dump({"score": h.score, "moment": h.moment,
                                        "shot": shot_to_dict(h.shot)}) for h in c.hits)
            cal = dump(c.calibration.to_dict() if c.calibration else None)
            shots.append(f'  {{"shot_id": {dump(c.shot_id)}, "query": {dump(c.query)}, "hits": ['
                         + (f"\n    {hits}\n  " if hits else "") + f'], "calibration": {cal}}}')
        return (f'{{"version": {CANDIDATES_VERSION}, "library": {dump(self.library)}, '
                f'"embedder": {dump(self.embedder)}, "shots": [\n' + ",\n".join(shots) + "\n]}\n")

    @classmethod
    def from_json(cls, text: str) -> "CandidateSet":
        data = json.loads(text)
        shots = tuple(
            ShotCandidates(
                shot_id=c["shot_id"],
                query=c["query"],
                hits=tuple(
                    Hit(
                        shot=shot_from_dict(h["shot"]),
                        score=float(h["score"]),
                        moment=None if h.get("moment") is None else float(h["moment"]),
                    )
                    for h in c["hits"]
                ),
                calibration=QueryCalibration.from_dict(c.get("calibration")),
            )
            for c in data["shots"]
        )
        return cls(library=data["library"], embedder=data["embedder"], shots=shots)


def shot_to_dict(shot: LibraryShot) -> dict:
    """Like ``dataclasses.asdict`` but without its deep copies (a film has thousands of hits)."""
    data = dict(shot.__dict__)
    if shot.features is not None:
        data["features"] = dict(shot.features.__dict__)
    return data


def features_from_dict(data: dict | None) -> ShotFeatures | None:
    """Inverse of ``dataclasses.asdict`` for ShotFeatures (JSON turns tuples into lists)."""
    if data is None:
        return None
    return ShotFeatures(**{
        **data,
        "histogram": tuple(data.get("histogram", ())),
        "colors": tuple(tuple(c) for c in data.get("colors", ())),
        "face_descriptors": tuple(tuple(d) for d in data.get("face_descriptors", ())),
    })


def shot_from_dict(data: dict) -> LibraryShot:
    """Inverse of ``dataclasses.asdict`` for LibraryShot, tolerant of indexes without features."""
    return LibraryShot(**{**data, "labels": tuple(data["labels"]),
                          "features": features_from_dict(data.get("features"))})
