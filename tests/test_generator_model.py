"""The builtin generator: a tiny real diffusion transformer (2 layers, 16x16, 2 steps).

Weights are random or trained for a few seconds here; what is checked is behaviour: training
lowers the loss, a seed fixes the output, the clip has the film's exact frames, size and rate,
the cache answers a repeated request, and bad inputs fail with messages that say what to do.
"""
from __future__ import annotations

from fractions import Fraction
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generator import (GenerationFailed, GenerationRequest, GeneratorModelError, make_generator,
                       make_generators)
from generator.builtin import BuiltinGenerator, BuiltinSettings
from generator.dit import DiT, DiTConfig, fit, load_weights, sample, save_weights, to_model, diffusion_loss
from generator.video import spread
from retrieval.media.ffmpeg import count_video_frames
from retrieval.media.decode import probe, read_frames

TINY = DiTConfig(width=16, height=16, frames=2, patch=4, tpatch=2, dim=32, depth=2, heads=2)
# The same model predicting velocity: untrained (all-zero output) it denoises towards a scaled
# copy of its input, so SDEdit visibly keeps the init image, which the tests can check.
TINY_V = replace(TINY, prediction="v")


def _weights(path: Path, seed: int = 0, config: DiTConfig = TINY_V) -> Path:
    torch.manual_seed(seed)
    save_weights(DiT(config), path, {"test": True})
    return path


def _request(**kw) -> GenerationRequest:
    base = dict(shot_id="sh-1", prompt="A red car drives down a street.", query="red car street",
                characters=(), seconds=0.5, width=64, height=36, rate="25", seed=3)
    return GenerationRequest(**{**base, **kw})


def _colour_clips(n: int = 4) -> np.ndarray:
    """n flat-colour clips, 2 frames of 18x18: something a tiny model can learn in seconds."""
    colours = np.array([[220, 30, 30], [30, 200, 40], [30, 40, 220], [230, 220, 40]], np.uint8)
    return np.stack([np.broadcast_to(colours[i % 4], (2, 18, 18, 3)) for i in range(n)]).copy()


def test_patchify_round_trip_and_zero_init_output() -> None:
    model = DiT(TINY)
    x = torch.randn(3, 3, TINY.frames, TINY.height, TINY.width)
    assert torch.equal(model.unpatchify(model.patchify(x)), x)
    # adaLN-Zero: an untrained model predicts zero velocity, whatever the input
    with torch.no_grad():
        out = model(x, torch.rand(3), torch.randn(3, 384), torch.randn(3, 128), torch.ones(3))
    assert out.shape == x.shape and float(out.abs().max()) == 0.0


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="multiples of patch"):
        DiTConfig(width=17, height=16, patch=4)


def _eval_loss(model: DiT, clips: np.ndarray, text: np.ndarray) -> float:
    """The v-loss on fixed noise and times (the same numbers before and after training)."""
    x0 = torch.as_tensor(np.stack([to_model(c[:, 1:17, 1:17]) for c in clips]))
    model.eval()
    with torch.no_grad():
        losses = [float(diffusion_loss(model, x0, torch.as_tensor(text), torch.zeros(len(clips), 128),
                               torch.zeros(len(clips)), torch.Generator().manual_seed(k)))
                  for k in range(4)]
    return float(np.mean(losses))


def test_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = DiT(TINY)
    clips = _colour_clips(8)
    text = np.random.default_rng(0).standard_normal((8, 384)).astype(np.float32)
    before = _eval_loss(model, clips, text)
    result = fit(model, clips, text, np.zeros((8, 128), np.float32), np.zeros(8, np.float32),
                 np.ones(8), seconds=600, max_steps=80, batch=8, lr=2e-3, log_every=20)
    assert result.steps == 80 and len(result.losses) == 4
    after = _eval_loss(model, clips, text)
    assert after < 0.7 * before, (before, after, result.losses)


def test_sampling_is_deterministic_per_seed_and_uses_the_init_image() -> None:
    torch.manual_seed(1)
    model = DiT(TINY_V)
    for p in model.parameters():  # a non-trivial (random) network, not the zero-initialised one
        torch.nn.init.normal_(p, std=0.05)
    text = np.ones(384, np.float32)
    a = sample(model, text, None, seed=5, steps=2)
    b = sample(model, text, None, seed=5, steps=2)
    c = sample(model, text, None, seed=6, steps=2)
    assert a.shape == (2, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    white = np.full((2, 16, 16, 3), 255, np.uint8)
    weak = sample(model, text, None, seed=5, steps=2, init=white, strength=0.2)
    assert weak.mean() > a.mean() + 40, "SDEdit at low strength stays near the init image"


def test_weights_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = DiT(TINY)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_weights(model, tmp_path / "w.safetensors", {"steps": 7})
    loaded, meta = load_weights(tmp_path / "w.safetensors")
    assert loaded.config == TINY and meta == {"steps": 7}
    text = np.ones(384, np.float32)
    # float16 storage: the same network up to rounding
    diff = np.abs(sample(model, text, None, seed=1, steps=2).astype(int)
                  - sample(loaded, text, None, seed=1, steps=2).astype(int))
    assert diff.mean() < 2.0


@pytest.mark.parametrize("rate,seconds", [("25", 0.5), ("30000/1001", 0.7)])
def test_generated_clip_has_exact_frames_size_and_rate(tmp_path: Path, rate: str,
                                                       seconds: float) -> None:
    gen = BuiltinGenerator(_weights(tmp_path / "w.safetensors"), BuiltinSettings(steps=2))
    req = _request(rate=rate, seconds=seconds, width=80, height=46)
    clip = gen.generate(req, cache_dir=tmp_path / "cache", progress=False)
    want = round(seconds * Fraction(rate))
    assert clip.frames == want == req.frames
    path = Path(clip.path)
    assert path.suffix == ".mp4" and path.is_file()
    assert count_video_frames(path) == want
    info = probe(path)
    assert (info.width, info.height) == (80, 46)
    assert abs(info.fps - float(Fraction(rate))) < 0.01
    assert clip.backend == "builtin" and clip.seed == 3 and not clip.cached
    assert clip.prompt.startswith("A red car drives")


def test_cache_hit_returns_the_same_clip_and_a_change_misses(tmp_path: Path) -> None:
    gen = BuiltinGenerator(_weights(tmp_path / "w.safetensors"), BuiltinSettings(steps=2))
    first = gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)
    again = gen.generate(_request(), cache_dir=tmp_path / "c", progress=False)
    assert again.cached and again.path == first.path and again.seed == first.seed
    other = gen.generate(_request(seed=4), cache_dir=tmp_path / "c", progress=False)
    assert not other.cached and other.path != first.path
    # other weights are another model: no stale hit
    gen2 = BuiltinGenerator(_weights(tmp_path / "w2.safetensors", seed=9), BuiltinSettings(steps=2))
    assert not gen2.generate(_request(), cache_dir=tmp_path / "c", progress=False).cached


def test_same_request_same_pixels_with_an_init_image(tmp_path: Path) -> None:
    gen = BuiltinGenerator(_weights(tmp_path / "w.safetensors"), BuiltinSettings(steps=2))
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 36), (255, 255, 255)).save(init)
    req = _request(init_image=str(init))
    a = gen.generate(req, cache_dir=tmp_path / "a", progress=False)
    b = gen.generate(req, cache_dir=tmp_path / "b", progress=False)
    fa, fb = (read_frames(Path(c.path), [0.0, 0.3]) for c in (a, b))
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert str(init) in a.references
    # an untrained velocity model keeps the init image's look: mostly white
    assert fa[0].mean() > 150
    grey = BuiltinGenerator(_weights(tmp_path / "x0.safetensors", config=TINY), BuiltinSettings(steps=2))
    fg = read_frames(Path(grey.generate(req, cache_dir=tmp_path / "g", progress=False).path), [0.0])
    assert abs(fg[0].mean() - 128) < 3, "an untrained clean-clip predictor answers mid-grey"


def test_spread_keeps_ends_and_blends_between() -> None:
    frames = np.stack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8)])
    out = spread(frames, 5)
    assert out.shape == (5, 2, 2, 3)
    assert list(out[:, 0, 0, 0]) == [0, 50, 100, 150, 200]
    assert spread(frames[:1], 3).shape == (3, 2, 2, 3)


@pytest.mark.parametrize("change,message", [
    (dict(rate="fast"), "rate must look like"),
    (dict(seconds=0.0), "seconds must be positive"),
    (dict(width=15), "width must be an even number"),
    (dict(prompt="", query=""), "prompt and query are both empty"),
    (dict(init_image="/nonexistent/frame.png"), "init_image does not exist"),
])
def test_bad_requests_say_what_is_wrong(tmp_path: Path, change: dict, message: str) -> None:
    gen = BuiltinGenerator(_weights(tmp_path / "w.safetensors"), BuiltinSettings(steps=2))
    with pytest.raises(GenerationFailed, match=message):
        gen.generate(_request(**change), cache_dir=tmp_path / "c", progress=False)


def test_init_image_that_is_not_an_image(tmp_path: Path) -> None:
    gen = BuiltinGenerator(_weights(tmp_path / "w.safetensors"), BuiltinSettings(steps=2))
    bad = tmp_path / "frame.png"
    bad.write_text("not a picture")
    with pytest.raises(GenerationFailed, match="init image unusable"):
        gen.generate(_request(init_image=str(bad)), cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").glob("*.mp4")), "nothing is cached for a failed shot"


def test_factory_specs(tmp_path: Path) -> None:
    assert make_generator("off") is None
    w = _weights(tmp_path / "w.safetensors")
    gen = make_generator(f"builtin:{w}")
    assert gen is not None and gen.backend == "builtin" and gen.model == str(w.resolve())
    with pytest.raises(GeneratorModelError, match="available: standin, builtin"):
        make_generator("sora")
    assert make_generator("standin").backend == "standin"
    both = make_generators(f"standin, builtin:{w}")
    assert [g.backend for g in both] == ["standin", "builtin"] and make_generators("off") == ()
    for bad in ("standin,,builtin", "standin,off"):
        with pytest.raises(GeneratorModelError, match="comma|cannot be combined"):
            make_generators(bad)
    with pytest.raises(GeneratorModelError, match="weights not found"):
        make_generator(f"builtin:{tmp_path / 'missing.safetensors'}")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(GeneratorModelError, match="not a builtin generator weights file"):
        make_generator(f"builtin:{junk}")


def test_shipped_weights_load() -> None:
    from safetensors.torch import load_file

    from generator.builtin import DEFAULT_WEIGHTS

    gen = make_generator("builtin")
    assert isinstance(gen, BuiltinGenerator) and gen.weights == DEFAULT_WEIGHTS
    model = gen.net()
    shipped, loaded = load_file(str(DEFAULT_WEIGHTS)), model.state_dict()
    assert shipped.keys() == loaded.keys()  # every tensor came from the file, none is fresh
    assert all(torch.equal(loaded[k], t.float()) for k, t in shipped.items())
    assert model.config.width / model.config.height == pytest.approx(16 / 9)
    assert gen.weights.stat().st_size < 6_000_000, "shipped weights stay small"


def test_a_bad_reference_fails_only_that_shot(tmp_path: Path) -> None:
    from generator import CastError, Character, GeneratorError

    gen = BuiltinGenerator(_weights(tmp_path / "w.safetensors"), BuiltinSettings(steps=2))
    bad = tmp_path / "anna.png"
    bad.write_text("not a photo")
    cast = (Character("Anna", references=(str(bad),), seed=5), Character("Ben", seed=6))
    with pytest.raises(CastError, match="not an image") as info:
        gen.generate(_request(characters=("Anna",), cast=cast), cache_dir=tmp_path / "c",
                     progress=False)
    assert isinstance(info.value, GeneratorError)  # the caller's one rule: mark the shot missing
    ok = gen.generate(_request(characters=("Ben",), cast=cast), cache_dir=tmp_path / "c",
                      progress=False)
    assert ok.seed == 6, "a shot of another character still generates, with that one's seed"
