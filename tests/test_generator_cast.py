"""The cast: cast.toml parsing, identities from reference photos (real dlib) and from the
library's face descriptors (hand-made ShotFeatures), and the errors a user can act on."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from generator import CastError, Character, identity_from_library, load_cast, resolve_identity
from generator.cast import default_seed, face_distance
from generator.conditioning import effective_seed, full_prompt, pick_init_hit
from generator.types import GenerationRequest
from retrieval.types import Hit, LibraryShot, ShotFeatures
from tests.conftest import make_still


def _skimage(name: str) -> Path:
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


def _desc(seed: int, scale: float = 0.2) -> tuple[float, ...]:
    """A fake-but-plausible 128-d descriptor: dlib's are about unit length."""
    v = np.random.default_rng(seed).standard_normal(128)
    return tuple(float(x) for x in v / np.linalg.norm(v) * scale * 5)


def _near(d: tuple[float, ...], seed: int, eps: float = 0.05) -> tuple[float, ...]:
    n = np.random.default_rng(seed).standard_normal(128)
    return tuple(float(x) for x in np.asarray(d) + n / np.linalg.norm(n) * eps)


def _shot(name: str, *descs: tuple[float, ...]) -> LibraryShot:
    return LibraryShot(id=f"{name}#0", path=name, kind="still", start=0.0, end=0.0, width=64,
                       height=36, fps=0.0,
                       features=ShotFeatures(faces=len(descs), face_descriptors=tuple(descs)))


def test_cast_from_plan_and_toml(tmp_path: Path) -> None:
    ref = make_still(tmp_path / "refs" / "anna.png")
    toml = tmp_path / "cast.toml"
    toml.write_text('[[character]]\nname = "Anna"\ndescription = "a woman with short red hair"\n'
                    'references = ["refs/anna.png"]\nseed = 7\n\n'
                    '[[character]]\nname = "Ben"\n', encoding="utf-8")
    cast = load_cast(toml, ["anna", "Maya"])
    by = {c.name: c for c in cast}
    assert set(by) == {"Anna", "Ben", "Maya"}
    assert by["Anna"].references == (str(ref.resolve()),) and by["Anna"].seed == 7
    assert by["Anna"].description == "a woman with short red hair"
    assert by["Maya"].seed == default_seed("Maya") != by["Ben"].seed
    assert load_cast(None, ["Maya", "maya"]) == (Character("Maya", seed=default_seed("Maya")),)


@pytest.mark.parametrize("text,message", [
    ('[[character]\nname = "A"', "not valid TOML"),
    ('[[character]]\ndescription = "x"', "no name"),
    ('[[character]]\nname = "A"\nage = 3', "unknown key 'age'"),
    ('[[character]]\nname = "A"\nseed = "seven"', "seed must be a int"),
    ('[[character]]\nname = "A"\nreferences = ["gone.jpg"]', "reference image not found"),
    ('[[character]]\nname = "A"\n[[character]]\nname = "a"', "listed twice"),
    ('[settings]\nx = 1', "unknown table"),
])
def test_bad_cast_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "cast.toml"
    toml.write_text(text, encoding="utf-8")
    with pytest.raises(CastError, match=message) as info:
        load_cast(toml, [])
    assert str(toml) in info.value.message
    with pytest.raises(CastError, match="cast file not found"):
        load_cast(tmp_path / "nope.toml", [])


def test_identity_from_a_reference_photo() -> None:
    astronaut = Character("Eileen", references=(str(_skimage("astronaut.png")),))
    who = resolve_identity(astronaut)
    assert who.descriptor is not None and len(who.descriptor) == 128
    assert 0.5 < float(np.linalg.norm(who.descriptor)) < 2.0
    assert resolve_identity(who) is who  # resolved once


def test_reference_that_is_not_an_image_or_has_no_face(tmp_path: Path) -> None:
    text = tmp_path / "anna.jpg"
    text.write_text("this is not a photo")
    with pytest.raises(CastError, match="is not an image") as info:
        resolve_identity(Character("Anna", references=(str(text),)))
    assert "anna.jpg" in info.value.message and info.value.hint
    pattern = make_still(tmp_path / "pattern.png", size="320x240")
    with pytest.raises(CastError, match="shows no face"):
        resolve_identity(Character("Anna", references=(str(pattern),)))


def test_identity_from_library_takes_the_most_frequent_face_cluster() -> None:
    anna, other = _desc(1), _desc(2)
    shots = [_shot("a1.png", _near(anna, 10)), _shot("a2.png", _near(anna, 11), _near(other, 12)),
             _shot("b.png", _near(other, 13)), _shot("a3.png", _near(anna, 14)),
             _shot("none.png")]
    who = identity_from_library(Character("Anna"), shots)
    assert who.descriptor is not None
    assert np.linalg.norm(np.subtract(who.descriptor, anna)) < 0.1
    assert np.linalg.norm(np.subtract(who.descriptor, other)) > 0.6
    # references win over the library; no faces leaves the identity unknown
    with_refs = Character("Anna", references=("/x.png",))
    assert identity_from_library(with_refs, shots) is with_refs
    assert identity_from_library(Character("Anna"), [_shot("none.png")]).descriptor is None


def test_the_generator_starts_from_a_library_shot_of_the_character() -> None:
    anna = Character("Anna", description="red hair", seed=11, descriptor=_desc(1))
    hits = [Hit(_shot("best.png", _desc(2)), 0.9), Hit(_shot("anna.png", _near(_desc(1), 3)), 0.5),
            Hit(_shot("empty.png"), 0.8)]
    assert pick_init_hit(hits, [anna]).shot.path == "anna.png"
    assert pick_init_hit(hits, []).shot.path == "best.png"
    assert face_distance(anna, hits[1].shot) < 0.1 and face_distance(anna, hits[2].shot) is None
    req = GenerationRequest("sh-1", "Anna opens the door.", "Anna open door", ("anna",), 1.0,
                            64, 36, "25", 3, cast=(anna, Character("Ben", seed=2)))
    assert req.members() == (anna,)
    assert effective_seed(req, req.members()) == 11, "a character keeps one seed across shots"
    assert full_prompt(req, req.members()) == "Anna opens the door. Anna: red hair."
