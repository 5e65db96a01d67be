"""The diffusers backend with tiny real components built here (random weights, the real
pipeline code), saved with save_pretrained and loaded back through make_generator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers")
import torch  # noqa: E402

from generator import GenerationFailed, GenerationRequest, GeneratorModelError, make_generator  # noqa: E402
from generator.diffusers_backend import (DiffusersGenerator, DiffusersSettings,  # noqa: E402
                                         build_tiny_pipeline, is_local)
from generator.errors import is_out_of_memory, memory_guard  # noqa: E402
from retrieval.ffmpeg import count_video_frames  # noqa: E402
from retrieval.media import probe, read_frames  # noqa: E402
from tests.conftest import make_still  # noqa: E402


def _tiny_sd(folder: Path) -> Path:
    return build_tiny_pipeline(folder)


def _tiny_t2v(folder: Path) -> Path:
    return build_tiny_pipeline(folder, video=True)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return _tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "pipe")


def _request(**kw) -> GenerationRequest:
    base = dict(shot_id="sh-9", prompt="A violinist plays on a bridge.", query="violinist bridge",
                characters=(), seconds=0.4, width=64, height=36, rate="25", seed=1)
    return GenerationRequest(**{**base, **kw})


def _settings(**kw) -> DiffusersSettings:
    return DiffusersSettings(**{"steps": 2, **kw})


def test_text_to_image_from_a_saved_folder(tiny_sd: Path, tmp_path: Path) -> None:
    gen = make_generator(f"diffusers:{tiny_sd}")
    assert isinstance(gen, DiffusersGenerator) and gen.model == str(tiny_sd.resolve())
    gen.settings = _settings()
    clip = gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)
    assert clip.backend == "diffusers" and clip.frames == 10
    assert count_video_frames(Path(clip.path)) == 10
    info = probe(Path(clip.path))
    assert (info.width, info.height) == (64, 36) and abs(info.fps - 25) < 0.01
    meta = json.loads(Path(clip.path).with_suffix(".json").read_text())
    assert meta["settings"]["kind"] == "text-to-image"
    assert meta["clip"]["seed"] == 1 and meta["request"]["prompt"].startswith("A violinist")
    again = gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)
    assert again.cached and again.path == clip.path


def test_same_seed_same_picture_and_init_image_goes_through_img2img(tiny_sd: Path,
                                                                   tmp_path: Path) -> None:
    gen = DiffusersGenerator(str(tiny_sd), _settings())
    a, _ = gen.sample(_request())
    b, _ = gen.sample(_request())
    c, _ = gen.sample(_request(seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    init = make_still(tmp_path / "near.png", size="64x36")
    frames, used = gen.sample(_request(init_image=str(init)))
    assert used["kind"] == "image-to-image" and used["init_image"] == str(init)
    clip = gen.generate(_request(init_image=str(init)), cache_dir=tmp_path / "c", progress=False)
    assert str(init) in clip.references
    assert len(read_frames(Path(clip.path), [0.0])) == 1


def test_text_to_video_pipeline(tmp_path: Path) -> None:
    folder = _tiny_t2v(tmp_path / "t2v")
    gen = DiffusersGenerator(str(folder), _settings())
    frames, used = gen.sample(_request(seconds=0.2))
    assert used["kind"] == "text-to-video" and frames.shape[0] == 5 and frames.dtype == np.uint8
    clip = gen.generate(_request(seconds=0.2, rate="30000/1001"), cache_dir=tmp_path / "c",
                        progress=False)
    assert count_video_frames(Path(clip.path)) == round(0.2 * 30000 / 1001)


def test_missing_or_wrong_model_folders(tmp_path: Path) -> None:
    with pytest.raises(GeneratorModelError, match="does not exist"):
        make_generator(f"diffusers:{tmp_path / 'nothing'}")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.safetensors").write_bytes(b"\x00")
    with pytest.raises(GeneratorModelError, match="not a diffusers pipeline folder"):
        make_generator(f"diffusers:{tmp_path / 'weights'}")
    with pytest.raises(GeneratorModelError, match="no model given"):
        make_generator("diffusers:")
    assert not is_local("stabilityai/stable-diffusion-2") and is_local(str(tmp_path))


def test_a_broken_pipeline_folder_fails_when_loaded(tiny_sd: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    for f in (broken / "unet").glob("*.safetensors"):
        f.write_bytes(b"garbage")
    gen = DiffusersGenerator(str(broken), _settings())
    with pytest.raises(GeneratorModelError, match="cannot load the diffusers pipeline"):
        gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)


def test_out_of_memory_is_a_clear_per_shot_error(tiny_sd: Path, tmp_path: Path) -> None:
    overcommit = Path("/proc/sys/vm/overcommit_memory")
    if overcommit.is_file() and overcommit.read_text().strip() == "1":
        pytest.skip("the kernel overcommits every allocation: a huge one would not fail at once")
    # a real allocation failure inside the real pipeline: latents of ~2 TiB
    gen = DiffusersGenerator(str(tiny_sd), _settings(max_side=1 << 20))
    with pytest.raises(GenerationFailed, match="ran out of memory") as info:
        gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)
    assert "sh-9" in info.value.message and "missing" in info.value.hint
    assert not list((tmp_path / "c").glob("*.mp4"))
    # the same guard recognises the CUDA and allocator failures of torch
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert not is_out_of_memory(ValueError("out of range"))
    with pytest.raises(GenerationFailed, match="ran out of memory"):
        with memory_guard("sh-1", "test"):
            torch.empty(1 << 62, dtype=torch.uint8)
