"""Training data from a real (tiny) library, and the `montage generator` commands."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generator.train import clip_times, collect
from generator.video import fit_frame
from montage.cli import main
from retrieval.types import LibraryShot, ShotFeatures
from tests.conftest import make_clip, make_still


def _video(path: str, start: float, end: float, **kw) -> LibraryShot:
    return LibraryShot(id=f"{path}#0", path=path, kind="video", start=start, end=end, width=64,
                       height=36, fps=24.0, **kw)


def test_clip_times_stay_inside_the_shot() -> None:
    for start, end in ((0.0, 2.0), (1.0, 1.3), (5.0, 5.0)):
        groups = clip_times(_video("a.mp4", start, end), 4)
        assert groups and all(len(g) == 4 for g in groups)
        assert all(start <= t <= max(start, end) for g in groups for t in g)
        assert all(g == sorted(g) for g in groups)
    assert len(clip_times(_video("a.mp4", 0.0, 10.0), 4, per_shot=12)) == 12


def test_fit_frame_crops_to_the_aspect() -> None:
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 150:250] = 255  # a white centre band survives the centre crop
    out = fit_frame(wide, 48, 27)
    assert out.shape == (27, 48, 3)
    assert out[:, 24].min() > 200 and out[:, 0].max() < 50


def test_collect_reads_clips_captions_and_faces(tmp_path: Path) -> None:
    make_clip(tmp_path / "street.mp4", duration=2.0)
    make_still(tmp_path / "sign.png")
    desc = tuple(float(x) for x in np.linspace(-0.1, 0.1, 128))
    shots = (
        _video("street.mp4", 0.0, 2.0, labels=("street", "traffic")),
        LibraryShot(id="sign.png#0", path="sign.png", kind="still", start=0.0, end=0.0, width=64,
                    height=36, fps=0.0, labels=("sign",),
                    features=ShotFeatures(faces=1, face_descriptors=(desc,))),
        _video("gone.mp4", 0.0, 1.0),  # unreadable: skipped with a warning
    )
    data = collect(tmp_path, shots, width=16, height=10, frames=2, per_shot=3, progress=False)
    assert data.shots == 2 and data.captions == ("street, traffic", "sign")
    assert data.clips.shape == (4, 2, round(10 * 1.125), 18, 3) and data.clips.dtype == np.uint8
    assert data.text.shape == (4, 384)
    # each shot weighs the same however many clips it gave
    assert data.weights[:3].sum() == pytest.approx(data.weights[3:].sum())
    assert list(data.has_id) == [0, 0, 0, 1] and np.allclose(data.ident[3], desc, atol=1e-6)
    # the video's clips move (testsrc2 animates); the still's frames are identical
    assert not np.array_equal(data.clips[0, 0], data.clips[0, 1])
    assert np.array_equal(data.clips[3, 0], data.clips[3, 1])


def test_generator_info_and_errors(capsys, tmp_path: Path) -> None:
    assert main(["generator", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "builtin" and info["config"]["width"] == 48
    assert info["trained"]["steps"] > 0
    assert main(["generator", "info", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "unknown generator 'nonsense'" in err and "available: standin, builtin" in err
    assert main(["generator", "train", "--library", str(tmp_path / "none")]) == 2
    assert "library folder does not exist" in capsys.readouterr().err
    assert main(["generator", "train", "--library", str(tmp_path), "--out", "w.pt"]) == 2
    assert "--out must end in .safetensors" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["generator", "train", "--library", str(tmp_path),
                 "--out", str(blocker / "w.safetensors")]) == 2
    assert "cannot write the weights" in capsys.readouterr().err


@pytest.mark.slow
def test_generator_train_command(tmp_path: Path, capsys) -> None:
    lib = tmp_path / "lib"
    make_clip(lib / "street.mp4", duration=2.0)
    make_still(lib / "sign.png", size="160x90")
    out = tmp_path / "w.safetensors"
    assert main(["generator", "train", "--library", str(lib), "--out", str(out),
                 "--minutes", "0.1", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    assert main(["generator", "info", f"builtin:{out}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trained"]["shots"] >= 2 and info["trained"]["steps"] >= 1
