"""Tiny real-architecture models in the hub's repository layout, served by a loopback hub, and
catalogue entries for them in a user file: what the model tests (and bench/gpu.py) pull.

- ``test/tiny-clip``: an open_clip model of a 2-layer config (``open_clip_config.json`` with its
  ``model_cfg``, random weights in ``open_clip_model.safetensors``), as laion's repos lay it out.
- ``test/tiny-sd``: a diffusers text-to-image pipeline of tiny real components
  (``generator.diffusers_backend.build_tiny_pipeline``: UNet, VAE, DDIM; MiniLM conditioning).
- ``test/big``: 24 MiB of random bytes in one LFS file (more than one 10 MiB download chunk),
  for killing a pull half way.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.hubserver import Hub, Repo, repo_from_folder

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
BIG_BYTES = 24 << 20


def build_tiny_clip(folder: Path) -> Path:
    """A tiny open_clip model saved as a hub repository of open_clip's own layout."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_CLIP_CONFIG,
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")  # no weights yet: random ones
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    return folder


def build_repos(root: Path) -> dict[str, Repo]:
    """The three test repositories (built once; the caller keeps ``root``)."""
    from generator.diffusers_backend import build_tiny_pipeline

    clip = build_tiny_clip(root / "tiny-clip")
    sd = build_tiny_pipeline(root / "tiny-sd")
    big = root / "big"
    big.mkdir(parents=True, exist_ok=True)
    (big / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG}))
    (big / "big.bin").write_bytes(os.urandom(BIG_BYTES))
    return {r.repo: r for r in (repo_from_folder("test/tiny-clip", clip),
                                repo_from_folder("test/tiny-sd", sd),
                                repo_from_folder("test/big", big))}


def catalogue_toml(repos: dict[str, Repo]) -> str:
    """User-file entries for the test repositories, pinned at their commits."""
    def rev(name: str) -> str:
        return repos[name].commit

    clip = repos["test/tiny-clip"]
    weights = "open_clip_model.safetensors"
    return f"""
[[model]]
name = "tiny-clip"
kind = "embedder"
loader = "open_clip"
purpose = "a 2-layer CLIP of random weights (tests)"
repo = "test/tiny-clip"
revision = "{rev('test/tiny-clip')}"
licence = "MIT"
dim = 32
rank = 50
approx_bytes = {sum(len(b) for b in clip.files.values())}
[[model.files]]
path = "open_clip_config.json"
[[model.files]]
path = "{weights}"
size = {len(clip.files[weights])}
sha256 = "{clip.sha256(weights)}"

[[model]]
name = "tiny-sd"
kind = "image"
loader = "diffusers"
purpose = "a tiny text-to-image pipeline of random weights (tests)"
repo = "test/tiny-sd"
revision = "{rev('test/tiny-sd')}"
licence = "MIT"
family = "tiny"
rank = 50
[[model.files]]
path = "model_index.json"
[[model.files]]
path = "scheduler/*"
[[model.files]]
path = "unet/*"
[[model.files]]
path = "vae/*"
[model.settings]
steps = 2
guidance = 1.0
max_side = 64

[[model]]
name = "tiny-sd-nc"
kind = "image"
loader = "diffusers"
purpose = "the same pipeline under a non-commercial licence (tests)"
repo = "test/tiny-sd"
revision = "{rev('test/tiny-sd')}"
licence = "Research only (tests)"
commercial = false
rank = 90
[[model.files]]
path = "*"

[[model]]
name = "big-test"
kind = "identity"
loader = "ip_adapter"
purpose = "one big file, for killing a pull half way (tests)"
repo = "test/big"
revision = "{rev('test/big')}"
licence = "MIT"
works_with = "nothing"
[[model.files]]
path = "*"
"""


def model_env(tmp: Path, hub: Hub, repos: dict[str, Repo]) -> dict[str, str]:
    """Environment for a machine whose hub is ``hub``: its own caches and catalogue file."""
    user = tmp / "config" / "models.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(catalogue_toml(repos))
    return {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp / "hf-cache"),
            "MONTAGE_MODELS_HOME": str(tmp / "models-home"), "MONTAGE_MODELS_FILE": str(user),
            "HF_HUB_DISABLE_TELEMETRY": "1"}


__all__ = ["BIG_BYTES", "build_repos", "build_tiny_clip", "catalogue_toml", "model_env"]
