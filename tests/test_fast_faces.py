"""The indexer's faces from BlazeFace (dlib only describes them) against dlib's own detector.

The indexer used dlib's HOG detector on every keyframe (about 85 ms each); it now finds faces
with mediapipe's BlazeFace and runs dlib's shape predictor and descriptor network only on the
faces found. Here both run on the same shots of the demo's real clips and stills: every feature
that has nothing to do with faces is the same, every face dlib found is found, and described as
the same person.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from montage.cli.demo import fetch_demo_library
from retrieval.analysis.analyse import shot_features
from retrieval.analysis.faces import SAME_PERSON, detect_faces, distance
from retrieval.media.decode import probe, read_still
from retrieval.analysis.motion import STILL, analyse_motion
from retrieval.analysis.scan import scan_video

SKIMAGE_DATA = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"
SAME = ("brightness", "contrast", "saturation", "sharpness", "stability", "motion", "camera",
        "histogram", "colors", "people")


@pytest.fixture(scope="module")
def shots() -> list[tuple[str, list[np.ndarray], object]]:
    """(name, keyframes, motion) of every shot of the demo's clips and of two stills."""
    demo = fetch_demo_library()
    out = []
    for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone.mp4"):
        info = probe(demo / name)
        for n, shot in enumerate(scan_video(demo / name, info.duration, info.fps)):
            out.append((f"{name}#{n}", list(shot.keyframes),
                        analyse_motion(list(shot.triplets), info.fps)))
    for still in ("astronaut.png", "coffee.png"):
        out.append((still, [read_still(SKIMAGE_DATA / still)], STILL))
    return out


@pytest.mark.slow  # several seconds; CI runs it with make test-slow
def test_every_face_dlib_finds_is_found_and_described_alike(shots) -> None:
    found_by_both = 0
    for name, frames, motion in shots:
        old = shot_features(frames, motion, face_detector="dlib")
        new = shot_features(frames, motion, face_detector="mediapipe")
        for field in SAME:
            assert getattr(new, field) == getattr(old, field), (name, field)
        assert new.faces >= old.faces, name
        if old.faces:
            found_by_both += 1
            assert new.scale == old.scale, name
            assert new.face_size == pytest.approx(old.face_size, rel=0.25), name
            assert distance(new.face_descriptors[0], old.face_descriptors[0]) < 0.2, name
    assert found_by_both >= 2  # the astronaut and the man in the car at least


def test_blazeface_finds_what_dlib_misses_in_the_street_and_nothing_in_the_coffee() -> None:
    from retrieval.media.decode import read_frames

    demo = fetch_demo_library()
    cyclist = read_frames(demo / "bikes.mp4", [1.68])[0]  # a helmeted cyclist, face to camera
    assert detect_faces(cyclist, detector="dlib") == []
    (face,) = detect_faces(cyclist)
    assert len(face.descriptor) == 128 and face.bottom < cyclist.shape[0] / 2
    assert detect_faces(read_still(SKIMAGE_DATA / "coffee.png")) == []


def test_the_astronaut_is_one_person_whichever_detector_found_her() -> None:
    astronaut = read_still(SKIMAGE_DATA / "astronaut.png")
    (a,) = detect_faces(astronaut)
    (b,) = detect_faces(astronaut, detector="dlib")
    assert distance(a.descriptor, b.descriptor) < 0.1 < SAME_PERSON
    assert abs(a.height - b.height) <= 0.15 * b.height  # the same size of box: shot_scale agrees


def test_an_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown face detector"):
        detect_faces(np.zeros((32, 32, 3), np.uint8), detector="haar")
