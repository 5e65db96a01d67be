"""The film's cast: names from the plan, looks from cast.toml, identities from faces.

A character keeps one identity for the whole film: a 128-d dlib face descriptor taken from the
character's reference images, or, without references, from the face cluster that recurs most
in the library shots chosen for that character. The optimizer's continuity rule and the
generators read the same descriptor.

cast.toml::

    [[character]]
    name = "Anna"
    description = "a woman in her thirties with short red hair"
    references = ["anna1.jpg", "anna2.png"]   # relative to cast.toml
    seed = 7
"""
from __future__ import annotations

import tomllib
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from retrieval.types import LibraryShot
from generator.errors import CastError
from generator.types import DESCRIPTOR_DIM, Character

_KEYS = {"name": str, "description": str, "references": list, "seed": int}
SAME_PERSON = 0.6  # dlib's usual threshold (retrieval.analysis.faces.SAME_PERSON)


def default_seed(name: str) -> int:
    """A stable per-name seed, so two characters never share noise by accident."""
    return zlib.crc32(name.strip().lower().encode("utf-8")) & 0x7FFFFFFF


def load_cast(path: Path | None, plan_characters: Iterable[str]) -> tuple[Character, ...]:
    """Every character of the plan, with what cast.toml says about them (and its extra entries).

    Reference paths are made absolute (relative ones are taken from cast.toml's folder) and
    must exist; whether they hold a face is checked when the identity is resolved.
    """
    entries: dict[str, Character] = {}
    if path is not None:
        for ch in _read_cast(Path(path)):
            key = ch.name.lower()
            if key in entries:
                raise CastError(f"{path}: character {ch.name!r} is listed twice",
                                "keep one [[character]] entry per name")
            entries[key] = ch
    for name in plan_characters:
        key = name.strip().lower()
        if key and key not in entries:
            entries[key] = Character(name=name.strip(), seed=default_seed(name))
    return tuple(entries.values())


def _read_cast(path: Path) -> list[Character]:
    if not path.is_file():
        raise CastError(f"cast file not found: {path}", "pass the path of a cast.toml, or leave it out")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CastError(f"{path}: not UTF-8 text", "save cast.toml as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise CastError(f"{path}: not valid TOML ({exc})", "fix the line named above") from None
    extra = sorted(set(data) - {"character"})
    if extra:
        raise CastError(f"{path}: unknown table(s) {', '.join(extra)}",
                        "cast.toml holds only [[character]] entries")
    rows = data.get("character", [])
    if not isinstance(rows, list):
        raise CastError(f"{path}: 'character' must be an array of tables",
                        "write each character as a [[character]] block")
    return [_character(path, n, row) for n, row in enumerate(rows, 1)]


def _character(path: Path, n: int, row: dict) -> Character:
    where = f"{path}: character #{n}"
    for key, value in row.items():
        if key not in _KEYS:
            raise CastError(f"{where}: unknown key {key!r}",
                            f"allowed keys: {', '.join(_KEYS)}")
        if not isinstance(value, _KEYS[key]) or (key == "seed" and isinstance(value, bool)):
            raise CastError(f"{where}: {key} must be a {_KEYS[key].__name__}, got {value!r}")
    name = str(row.get("name", "")).strip()
    if not name:
        raise CastError(f"{where}: no name", 'add name = "..." to the entry')
    where = f"{path}: character {name!r}"
    refs = []
    for ref in row.get("references", []):
        if not isinstance(ref, str) or not ref.strip():
            raise CastError(f"{where}: references must be file names, got {ref!r}")
        full = (path.parent / ref).expanduser().resolve()
        if not full.is_file():
            raise CastError(f"{where}: reference image not found: {full}",
                            "fix the path (relative paths start at cast.toml's folder)")
        refs.append(str(full))
    seed = row.get("seed", default_seed(name))
    if not 0 <= seed < 2**63:
        raise CastError(f"{where}: seed must be between 0 and 2**63-1, got {seed}")
    return Character(name=name, description=str(row.get("description", "")).strip(),
                     references=tuple(refs), seed=int(seed))


def reference_descriptor(character: Character) -> tuple[float, ...]:
    """The mean face descriptor of a character's reference images (largest face of each).

    CastError names the image that is not an image or shows no face.
    """
    from planner.errors import MediaError
    from retrieval.analysis import detect_faces
    from retrieval.media import read_still

    if not character.references:
        raise CastError(f"character {character.name!r} has no reference images")
    found = []
    for ref in character.references:
        try:
            image = read_still(Path(ref))
        except MediaError as exc:
            raise CastError(f"reference image of {character.name!r} is not an image: {ref} "
                            f"({exc.message})", "replace it with a photo (jpg, png, webp)") from None
        faces = detect_faces(image)
        if not faces or not faces[0].descriptor:
            raise CastError(f"reference image of {character.name!r} shows no face: {ref}",
                            "use a photo where the face is frontal and at least ~80 px high")
        found.append(faces[0].descriptor)
    return _mean(found)


def resolve_identity(character: Character) -> Character:
    """The character with its descriptor set from its references (kept if already set).

    Remembered per character and reference contents, so a film's many shots of one character
    run face detection once.
    """
    if not character.references:
        return character
    if not character.portraits:
        character = replace(character, portraits=character.references)
    if character.descriptor is not None:
        return character
    from generator.cache import file_digest

    digests = tuple(file_digest(r) for r in character.references)
    key = (character, digests)
    if key not in _RESOLVED:
        _RESOLVED[key] = replace(character, descriptor=_stored_descriptor(character, digests))
    return _RESOLVED[key]


def _stored_descriptor(character: Character, digests: tuple[str, ...]) -> tuple[float, ...]:
    """:func:`reference_descriptor`, kept on disk by the photos' contents and the face models'
    settings, so a recut from the command line neither loads dlib nor detects the face again."""
    import hashlib
    import json
    import os

    from retrieval.analysis import descriptor_settings
    from retrieval.embed import default_cache_dir

    settings = descriptor_settings()
    key = hashlib.sha1(json.dumps([digests, list(settings)]).encode()).hexdigest()[:20]
    path = default_cache_dir() / "face-descriptors" / f"{key}.json"
    try:
        stored = tuple(float(x) for x in json.loads(path.read_text(encoding="utf-8")))
        if len(stored) == 128:
            return stored
    except (OSError, ValueError, TypeError):
        pass
    descriptor = reference_descriptor(character)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(list(descriptor)), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache costs the next run a detection, nothing more
    return descriptor


_RESOLVED: dict[tuple, Character] = {}


@dataclass
class FaceCluster:
    """Faces of the library taken to be one person: (shot, descriptor) pairs."""

    faces: list[tuple[LibraryShot, np.ndarray]] = field(default_factory=list)

    @property
    def mean(self) -> np.ndarray:
        return np.mean([d for _, d in self.faces], axis=0)

    @property
    def shots(self) -> set[str]:
        return {shot.id for shot, _ in self.faces}


def face_clusters(shots: Iterable[LibraryShot]) -> list[FaceCluster]:
    """The analysed faces of ``shots`` grouped greedily at dlib's 0.6 threshold (each face
    joins the nearest cluster mean within it, else starts one), in the order first seen."""
    clusters: list[FaceCluster] = []
    for shot in shots:
        if shot.features is None:
            continue
        for desc in shot.features.face_descriptors:
            if len(desc) != DESCRIPTOR_DIM:
                continue
            v = np.asarray(desc, np.float64)
            best = min(clusters, key=lambda c: np.linalg.norm(c.mean - v), default=None)
            if best is not None and np.linalg.norm(best.mean - v) < SAME_PERSON:
                best.faces.append((shot, v))
            else:
                clusters.append(FaceCluster([(shot, v)]))
    return clusters


def identity_from_library(character: Character, shots: Iterable[LibraryShot]) -> Character:
    """The character with the identity of the face cluster most often seen in ``shots``.

    ``shots`` are the library shots chosen (or best ranked) for the planned shots that name the
    character. The cluster (``face_clusters``) present in the most shots wins (ties: more
    faces, then first seen), and its mean descriptor becomes the identity. Characters with
    references or a descriptor already, and shots without analysed faces, are left as they are.
    """
    if character.descriptor is not None or character.references:
        return character
    clusters = face_clusters(shots)
    if not clusters:
        return character
    top = max(clusters, key=lambda c: (len(c.shots), len(c.faces)))  # max keeps the first on ties
    return replace(character, descriptor=_mean([tuple(top.mean)]))


def face_distance(character: Character, shot: LibraryShot) -> float | None:
    """Distance from the character's identity to the closest face in a library shot (None: unknown)."""
    if character.descriptor is None or shot.features is None:
        return None
    descs = [d for d in shot.features.face_descriptors if len(d) == DESCRIPTOR_DIM]
    if not descs:
        return None
    me = np.asarray(character.descriptor, np.float64)
    return float(min(np.linalg.norm(np.asarray(d, np.float64) - me) for d in descs))


def _mean(descriptors: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    m = np.mean(np.asarray(descriptors, np.float64), axis=0)
    return tuple(round(float(x), 5) for x in m)
