"""The one-pass scan finds the shots and features the old two-pass analysis found.

The reference is computed here the old way, on the same real clips: PySceneDetect's own
``SceneManager`` over its PyAV backend for the cuts, then every keyframe and motion triplet read
back by seeking (:func:`retrieval.media.decode.read_frames`) and measured by the same feature code.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from montage.cli.demo import fetch_demo_library
from retrieval.analysis.analyse import Settings, analyse_file, shot_features
from retrieval.media.cuts import detect_shots, merge_short
from retrieval.media.decode import probe, read_frames
from retrieval.analysis.motion import analyse_motion, motion_times
from retrieval.analysis.scan import keyframe_fractions, scan_video
from tests.conftest import FFMPEG

SETTINGS = Settings(27.0, 0.4)


@pytest.fixture(scope="module")
def demo() -> Path:
    return fetch_demo_library()


def scenedetect_cuts(path: Path) -> list[float]:
    """Cut times as PySceneDetect's own pipeline finds them (its decoder, its downscale)."""
    from scenedetect import ContentDetector, SceneManager
    from scenedetect.backends.pyav import VideoStreamAv

    manager = SceneManager()
    manager.add_detector(ContentDetector(threshold=SETTINGS.threshold))
    manager.detect_scenes(video=VideoStreamAv(str(path), suppress_output=True))
    return [float(a.seconds) for a, _ in manager.get_scene_list()[1:]]


def seek_and_decode(path: Path, spans: list[tuple[float, float]]):
    """(keyframe times asked, features) per shot, measured on frames read back by seeking."""
    info = probe(path)
    out = []
    for a, b in spans:
        times = [a + f * (b - a) for f in keyframe_fractions(b - a)]
        triplets = motion_times(a, b, info.fps)
        frames = read_frames(path, times)
        flat = read_frames(path, [t for tr in triplets for t in tr])
        motion = analyse_motion([flat[i:i + 3] for i in range(0, len(flat), 3)], info.fps)
        out.append((times, shot_features(frames, motion)))
    return out


def assert_close(new, old, *, loose: bool = False) -> None:
    tol = 0.03 if loose else 1e-9
    for name in ("brightness", "contrast", "saturation", "sharpness", "motion"):
        assert getattr(new, name) == pytest.approx(getattr(old, name), abs=tol), name
    assert new.stability == pytest.approx(old.stability, abs=0.05 if loose else 1e-9)
    assert max(abs(x - y) for x, y in zip(new.histogram, old.histogram)) <= (0.01 if loose else 1e-9)
    for name in ("faces", "people", "scale", "camera"):
        assert getattr(new, name) == getattr(old, name), name


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4", "carphone.mp4"])
def test_cuts_are_the_ones_pyscenedetect_finds(demo: Path, name: str) -> None:
    path = demo / name
    spans = detect_shots(path, min_shot=0.0)
    assert [a for a, _ in spans[1:]] == pytest.approx(scenedetect_cuts(path), abs=1e-6)
    if name == "bikes.mp4":
        assert len(spans) == 6  # a real street clip with five cuts


def test_shots_and_features_match_seek_and_decode(demo: Path) -> None:
    """bikes.mp4 (640x272, shots of 1-2.5 s): every shot fits the frames the scan holds, so the
    keyframes are the very frames a seek lands on, and every feature is equal."""
    path = demo / "bikes.mp4"
    new = analyse_file(str(demo), "bikes.mp4", "video", SETTINGS)
    assert new.error == ""
    cuts = scenedetect_cuts(path)
    old_spans = merge_short([(a, b) for a, b in zip([0.0, *cuts], [*cuts, probe(path).duration])],
                            SETTINGS.min_shot)
    assert [x for s in new.spans for x in s] == pytest.approx([x for s in old_spans for x in s],
                                                              abs=1e-6)
    assert len(new.spans) == 5  # the 0.32 s tail joined the shot before it, as before
    fps = probe(path).fps
    for (times, old), group, feats in zip(seek_and_decode(path, list(new.spans)), new.groups,
                                          new.features):
        got = [new.times[i] for i in group]
        # the first frame at or after each asked time: at most one frame later
        assert all(0 <= g - t < 1 / fps + 1e-3 for g, t in zip(got, times))
        assert_close(feats, old)


def test_a_shot_longer_than_the_held_frames_stays_close(demo: Path) -> None:
    """bigbuckbunny.mp4 (720p, one 5.3 s shot) holds every 4th frame: keyframes land a few
    frames late, and the features stay within a small tolerance."""
    path = demo / "bigbuckbunny.mp4"
    new = analyse_file(str(demo), "bigbuckbunny.mp4", "video", SETTINGS)
    [(times, old)] = seek_and_decode(path, list(new.spans))
    assert all(0 <= g - t <= 0.2 for g, t in zip(new.times, times))
    assert_close(new.features[0], old, loose=True)


def test_a_tiny_frame_budget_still_picks_frames_near_the_asked_times(tmp_path: Path) -> None:
    clip = tmp_path / "long.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x180:rate=25:duration=9", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(clip)], check=True)
    info = probe(clip)
    [shot] = list(scan_video(clip, info.duration, info.fps, held_bytes=1))  # 12 pictures
    asked = [f * shot.end for f in keyframe_fractions(shot.end)]
    assert len(shot.times) == 5 and len(shot.triplets) == 3
    # 225 frames in 12 pictures: every 64th frame held at worst (with its two partners), so a
    # keyframe is within a stride of its time (after it, or the last held one before it)
    assert all(abs(g - t) <= 64 / 25 for g, t in zip(shot.times, asked))
    assert list(shot.times) == sorted(shot.times) and shot.times[0] < shot.times[-1]
    assert all(len(t) == 3 and t[0].shape == (180, 320) for t in shot.triplets)


def test_a_flash_at_the_end_joins_the_shot_before(tmp_path: Path) -> None:
    """A 0.25 s shot is merged into its neighbour; the keyframes are taken over the merged span,
    as the old analysis took them."""
    clip = tmp_path / "flash.mp4"
    inputs = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24:duration=1.5",
              "-f", "lavfi", "-i", "color=c=blue:size=160x90:rate=24:duration=0.25"]
    subprocess.run([FFMPEG, "-v", "error", "-y", *inputs, "-filter_complex",
                    "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)], check=True)
    assert len(detect_shots(clip, min_shot=0.0)) == 2
    new = analyse_file(str(tmp_path), "flash.mp4", "video", SETTINGS)
    assert new.spans == ((0.0, pytest.approx(1.75, abs=0.01)),)
    [(times, old)] = seek_and_decode(clip, list(new.spans))
    assert all(0 <= g - t < 1 / 24 + 1e-3 for g, t in zip(new.times, times))
    assert_close(new.features[0], old)
