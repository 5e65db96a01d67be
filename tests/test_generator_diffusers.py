"""The diffusers backend with tiny real components built here (random weights, the real
pipeline code), saved with save_pretrained and loaded back through make_generator."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers")
import torch  # noqa: E402

from generator import GenerationFailed, GenerationRequest, GeneratorModelError, make_generator  # noqa: E402
from generator.diffusers_backend import (TINY_IP_ADAPTER, DiffusersGenerator,  # noqa: E402
                                         DiffusersSettings, build_tiny_pipeline, is_local)
from generator.types import Character  # noqa: E402
from generator.errors import is_out_of_memory, memory_guard  # noqa: E402
from retrieval.media.ffmpeg import count_video_frames  # noqa: E402
from retrieval.media.decode import probe, read_frames  # noqa: E402
from tests.conftest import make_still  # noqa: E402


def _tiny_sd(folder: Path) -> Path:
    return build_tiny_pipeline(folder)


def _tiny_t2v(folder: Path) -> Path:
    return build_tiny_pipeline(folder, video=True)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return _tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "pipe")


@pytest.fixture(scope="module")
def tiny_sd_ip(tmp_path_factory) -> Path:
    """The tiny pipeline plus a tiny random IP-Adapter in ``ip_adapter/`` (the real layout)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd-ip") / "pipe", ip_adapter=True)


def _photo(name: str) -> str:
    """A real photo shipped with scikit-image (data/NAME)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-image (its sample photos) is not installed")
    path = Path(spec.origin).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"scikit-image has no {name}")
    return str(path)


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


# -- IP-Adapter: a tiny random one saved in the layout of a released one ------------------------

def _anna(*portraits: str) -> Character:
    return Character("Anna", portraits=portraits, seed=3)  # no description: the prompt is unchanged


def test_a_folder_with_an_ip_adapter_loads_it(tiny_sd_ip: Path, tiny_sd: Path) -> None:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    from diffusers.models.embeddings import MultiIPAdapterImageProjection
    from safetensors.torch import load_file
    from transformers import CLIPVisionModelWithProjection

    weights = tiny_sd_ip / "ip_adapter" / TINY_IP_ADAPTER
    saved = load_file(weights)
    assert {k.split(".")[0] for k in saved} == {"image_proj", "ip_adapter"}
    gen = make_generator(f"diffusers:{tiny_sd_ip}")
    assert isinstance(gen, DiffusersGenerator) and gen.has_ip_adapter()
    p = gen.pipe()
    assert isinstance(p.image_encoder, CLIPVisionModelWithProjection)
    assert p.feature_extractor.crop_size["height"] == p.image_encoder.config.image_size == 32
    assert isinstance(p.unet.encoder_hid_proj, MultiIPAdapterImageProjection)
    # every cross-attention layer got the saved image branch (1, 3, 5, ... in processor order)
    cross = [v for k, v in p.unet.attn_processors.items() if k.endswith("attn2.processor")]
    assert cross and all(isinstance(v, IPAdapterAttnProcessor2_0) for v in cross)
    for i, proc in enumerate(cross):
        assert torch.equal(proc.to_k_ip[0].weight, saved[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"])
        assert torch.equal(proc.to_v_ip[0].weight, saved[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"])
    assert torch.equal(p.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.weight,
                       saved["image_proj.proj.weight"])
    # the adapter is part of the model's identity (the cache key); the plain folder has none
    plain = DiffusersGenerator(str(tiny_sd), _settings())
    assert not plain.has_ip_adapter() and plain.identity() != gen.identity()
    with pytest.raises(ValueError, match="IP-Adapter"):
        build_tiny_pipeline(tiny_sd_ip.parent / "t2v", video=True, ip_adapter=True)


def test_a_characters_portrait_goes_through_the_ip_adapter(tiny_sd_ip: Path, tiny_sd: Path,
                                                           tmp_path: Path) -> None:
    astronaut, coffee = _photo("astronaut.png"), _photo("coffee.png")
    gen = DiffusersGenerator(str(tiny_sd_ip), _settings())
    seen = []  # what the adapter's CLIP image encoder was shown
    gen.pipe().image_encoder.register_forward_hook(
        lambda module, args, out: seen.append(args[0].detach().clone()))
    shot = dict(characters=("Anna",), cast=(_anna(astronaut),), seed=3)
    a, used = gen.sample(_request(**shot))
    assert used["ip_adapter_image"] == astronaut and used["kind"] == "text-to-image"
    assert len(seen) == 1 and seen[0].shape == (1, 3, 32, 32) and seen[0].abs().sum() > 0
    again, _ = gen.sample(_request(**shot))
    assert np.array_equal(a, again)  # deterministic
    # the same seed and prompt without the character: no picture, so different pixels
    alone, used_alone = gen.sample(_request(seed=3))
    assert used_alone["ip_adapter_image"] is None and used_alone["prompt"] == used["prompt"]
    assert not np.array_equal(a, alone)
    # ... and exactly the plain model's picture (the adapter at scale 0 adds nothing)
    plain, _ = DiffusersGenerator(str(tiny_sd), _settings()).sample(_request(seed=3))
    assert np.array_equal(alone, plain)
    # the character without any portrait is the same as no character
    faceless, _ = gen.sample(_request(**{**shot, "cast": (_anna(),)}))
    assert np.array_equal(faceless, alone)
    # the picture's content matters, not only its presence
    other, used_other = gen.sample(_request(**{**shot, "cast": (_anna(coffee),)}))
    assert used_other["ip_adapter_image"] == coffee and not np.array_equal(other, a)
    # an init image goes through img2img with the portrait too
    init = make_still(tmp_path / "near.png", size="64x36")
    with_init, used_init = gen.sample(_request(**shot, init_image=str(init)))
    without, _ = gen.sample(_request(seed=3, init_image=str(init)))
    assert used_init["kind"] == "image-to-image" and used_init["ip_adapter_image"] == astronaut
    assert not np.array_equal(with_init, without)


def test_the_clip_names_the_portrait_it_was_conditioned_on(tiny_sd_ip: Path,
                                                          tmp_path: Path) -> None:
    astronaut = _photo("astronaut.png")
    gen = make_generator(f"diffusers:{tiny_sd_ip}")
    gen.settings = _settings()
    clip = gen.generate(_request(characters=("Anna",), cast=(_anna(astronaut),)),
                        cache_dir=tmp_path / "c", progress=False)
    assert clip.references == (astronaut,) and count_video_frames(Path(clip.path)) == 10
    meta = json.loads(Path(clip.path).with_suffix(".json").read_text())
    assert meta["settings"]["ip_adapter_image"] == astronaut
    # a portrait that is not an image fails that shot, naming the file
    bad = tmp_path / "not-a-photo.png"
    bad.write_bytes(b"nope")
    with pytest.raises(GenerationFailed, match="not-a-photo.png"):
        gen.sample(_request(characters=("Anna",), cast=(_anna(str(bad)),)))


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


@pytest.mark.parametrize("breakage, named", [
    (lambda d: _truncate(d / "ip_adapter" / TINY_IP_ADAPTER), TINY_IP_ADAPTER),
    (lambda d: _truncate(d / "ip_adapter" / "image_encoder" / "model.safetensors"),
     "image_encoder/model.safetensors"),
    (lambda d: shutil.rmtree(d / "ip_adapter" / "image_encoder"), "image_encoder"),
], ids=["weights-truncated", "image-encoder-truncated", "image-encoder-missing"])
def test_a_broken_ip_adapter_is_a_model_error_naming_the_file(tiny_sd_ip: Path, tmp_path: Path,
                                                              breakage, named: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_ip, broken)
    breakage(broken)
    gen = DiffusersGenerator(str(broken), _settings())
    with pytest.raises(GeneratorModelError, match="IP-Adapter|truncated") as info:
        gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)
    assert named in info.value.message and str(broken) in info.value.message
    assert info.value.hint and not list((tmp_path / "c").glob("*.mp4"))
