"""What bench/gpu.sh runs: the CLIP embedder and the diffusers generator on CUDA.

No CLIP or diffusion weights can be downloaded here, so both models have their real
architecture (open_clip ViT-B-32; a Stable Diffusion 1.5-sized UNet and VAE at 512x512) with
random weights: the arithmetic, and so the speed and memory, are those of the trained models.
Both go through montage's own code: ``ClipEmbedder`` (``--device cuda``: half precision,
batches of ``CUDA_BATCH``) and ``DiffusersGenerator``. Then the pulled-model path: a loopback
Hugging Face Hub (tests/hubserver.py) serves tiny real-architecture models (the device machine
has no internet), ``montage models pull`` fetches them into a temporary hub cache, ``auto``
must take them, and ``montage models check`` loads each on the GPU and times one inference.
Prints JSON lines; without a CUDA device it prints one line saying so and exits 0.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SMOKE = "--smoke" in sys.argv


def _peak_gb(torch, device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def bench_clip(torch, device: str, tmp: Path) -> None:
    import open_clip

    from retrieval.embed.clip import ClipEmbedder

    weights = tmp / "vit-b-32-random.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), weights)
    emb = ClipEmbedder("ViT-B-32", str(weights), device=device, cache_dir=tmp)
    rng = np.random.default_rng(0)
    n = 16 if SMOKE else 2048
    frames = [rng.integers(0, 255, (360, 640, 3), np.uint8) for _ in range(n)]
    emb.embed_images(frames[:8], [""] * 8)  # load, warm up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    emb.embed_images(frames, [""] * n)
    if device == "cuda":
        torch.cuda.synchronize()
    s = time.perf_counter() - t
    t = time.perf_counter()
    emb.embed_queries([f"a shot of thing {i}" for i in range(256)])
    q = time.perf_counter() - t
    print(json.dumps({"bench": "gpu", "part": "clip ViT-B-32 (random weights)", "device": device,
                      "batch": emb.batch_size, "images": n, "seconds": round(s, 3),
                      "images_per_s": round(n / s, 1),
                      "shots_per_s_at_3_keyframes": round(n / s / 3, 1),
                      "queries_per_s": round(256 / q, 1),
                      "peak_gpu_gb": _peak_gb(torch, device)}), flush=True)


def _sd15_folder(folder: Path) -> Path:
    """Stable Diffusion 1.5's UNet and VAE shapes, random weights, MiniLM-width conditioning."""
    import diffusers
    import torch

    torch.manual_seed(0)
    if SMOKE:
        from generator.diffusers_backend import build_tiny_pipeline

        return build_tiny_pipeline(folder)
    unet = diffusers.UNet2DConditionModel(
        sample_size=64, cross_attention_dim=384, attention_head_dim=8,
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    vae = diffusers.AutoencoderKL(
        sample_size=512, latent_channels=4, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2)
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, unet=unet, scheduler=diffusers.DDIMScheduler(num_train_timesteps=1000,
                                                              clip_sample=False, steps_offset=1),
        text_encoder=None, tokenizer=None, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def bench_diffusers(torch, device: str, tmp: Path) -> None:
    from generator import GenerationRequest
    from generator.diffusers_backend import DiffusersGenerator, DiffusersSettings

    folder = _sd15_folder(tmp / "sd15-random")
    steps = 2 if SMOKE else 20
    gen = DiffusersGenerator(str(folder), DiffusersSettings(steps=steps, device=device))
    shots = 2 if SMOKE else 6

    def request(i: int) -> GenerationRequest:
        return GenerationRequest(shot_id=f"sh-{i}", prompt=f"a harbour at dawn, take {i}",
                                 query="harbour dawn", characters=(), seconds=2.0,
                                 width=1280, height=720, rate="25", seed=i)

    gen.generate(request(100), cache_dir=tmp / "cache")  # load, warm up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for i in range(shots):
        gen.generate(request(i), cache_dir=tmp / "cache")
    s = time.perf_counter() - t
    print(json.dumps({"bench": "gpu", "part": "diffusers SD1.5-sized UNet+VAE (random weights)",
                      "device": device, "steps": steps, "shots": shots,
                      "seconds": round(s, 2), "shots_per_s": round(shots / s, 3),
                      "seconds_per_shot": round(s / shots, 2),
                      "peak_gpu_gb": _peak_gb(torch, device)}), flush=True)


def bench_pulled(torch, device: str, tmp: Path) -> None:
    """Pull tiny models from a loopback hub, let auto take them, check them on ``device``."""
    import os

    from tests.hubserver import Hub
    from tests.models_kit import build_repos, model_env

    repos = build_repos(tmp / "repos")
    saved = dict(os.environ)
    try:
        with Hub() as hub:
            for r in repos.values():
                hub.add(r)
            os.environ.update(model_env(tmp / "pulled", hub, repos))
            from generator import resolve_auto
            from generator.modelcheck import check
            from retrieval.embed import resolve_embedder
            from retrieval.models import pull

            t = time.perf_counter()
            for name in ("tiny-clip", "tiny-sd"):
                pull(name, progress=False)
            pulled = time.perf_counter() - t
            chosen = [resolve_embedder("auto").spec, resolve_auto().spec]
            results = check(["tiny-clip", "tiny-sd"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    print(json.dumps({"bench": "gpu", "part": "pulled models (tiny, from a loopback hub)",
                      "device": device, "pull_s": round(pulled, 2), "auto_took": chosen,
                      "check": [r.to_json() for r in results]}), flush=True)


def main() -> int:
    import torch

    if not torch.cuda.is_available() and not SMOKE:
        print(json.dumps({"bench": "gpu", "device": None,
                          "note": "no CUDA device here: nothing measured (run on a GPU machine)"}))
        return 0
    device = "cpu" if SMOKE else "cuda"
    if device == "cuda":
        print(json.dumps({"bench": "gpu", "gpu": torch.cuda.get_device_name(0),
                          "torch": torch.__version__, "cuda": torch.version.cuda}), flush=True)
    with tempfile.TemporaryDirectory(prefix="montage-gpu-") as tmp:
        for part in (bench_clip, bench_diffusers, bench_pulled):
            try:
                part(torch, device, Path(tmp))
            except Exception as exc:  # report the part that failed, still run the other
                print(json.dumps({"bench": "gpu", "part": part.__name__,
                                  "error": f"{type(exc).__name__}: {exc}"[:500]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
