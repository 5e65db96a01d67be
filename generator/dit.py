"""The builtin video model: a small diffusion transformer over space-time patches (the one
module of the builtin backend that imports torch).

A clip of ``frames`` RGB frames at ``width`` x ``height`` is cut into space-time patches
(``tpatch`` frames x ``patch`` x ``patch`` pixels), each patch a token with a fixed 3-D
sine-cosine position, as the Sora report describes; transformer blocks with adaLN-Zero
conditioning (DiT, Peebles & Xie 2023) see every token of the clip at once, and a 3x3
convolution (U-ViT) smooths patch borders. The condition is the diffusion time, the shot's
MiniLM text vector and a character's 128-d face descriptor. Training predicts the clean clip
on a cosine schedule; sampling is deterministic DDIM, optionally starting part-way from an init
clip (SDEdit), with classifier-free guidance. CPU and float32; the caller moves work elsewhere.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from generator.weights import FORMAT, read_header



@dataclass(frozen=True)
class DiTConfig:
    """Constructor-shaped settings, saved inside every weights file."""

    width: int = 48
    height: int = 27
    frames: int = 4
    patch: int = 3
    tpatch: int = 2
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    id_dim: int = 128
    prediction: str = "x0"  # what the network predicts: "x0" (the clean clip) or "v"

    def __post_init__(self) -> None:
        if self.prediction not in ("x0", "v"):
            raise ValueError(f"DiTConfig.prediction must be 'x0' or 'v', got {self.prediction!r}")
        for name in ("width", "height", "frames", "patch", "tpatch", "dim", "depth", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"DiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.patch or self.height % self.patch:
            raise ValueError(f"DiTConfig: width {self.width} and height {self.height} must be "
                             f"multiples of patch {self.patch}")
        if self.frames % self.tpatch:
            raise ValueError(f"DiTConfig: frames {self.frames} must be a multiple of tpatch {self.tpatch}")
        if self.dim % self.heads:
            raise ValueError(f"DiTConfig: dim {self.dim} must be a multiple of heads {self.heads}")

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.frames // self.tpatch, self.height // self.patch, self.width // self.patch

    @property
    def tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def patch_dim(self) -> int:
        return 3 * self.tpatch * self.patch * self.patch


def timestep_embedding(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """Sinusoidal features of diffusion time t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = (t.float()[:, None] * 1000.0) * freqs[None].to(t.device)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / max(1, half)))
    args = positions.float()[:, None] * freqs[None]
    out = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(out, (0, dim - out.shape[1]))  # an odd width gets one zero column


def sincos_positions(c: DiTConfig) -> torch.Tensor:
    """Fixed 3-D sine-cosine embedding of each token's (time, row, column), as in DiT: the
    network knows where every patch is from the first step instead of learning it."""
    gt, gh, gw = c.grid
    d_t = 2 * (c.dim // 8)
    d_y = 2 * ((c.dim - d_t) // 4)
    d_x = c.dim - d_t - d_y
    t, y, x = torch.meshgrid(torch.arange(gt), torch.arange(gh), torch.arange(gw), indexing="ij")
    parts = [_sincos(t.reshape(-1), d_t), _sincos(y.reshape(-1), d_y), _sincos(x.reshape(-1), d_x)]
    return torch.cat(parts, dim=-1)[None, :, : c.dim]


class Block(nn.Module):
    """Self-attention over all space-time tokens + MLP, both modulated by the condition."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        b, n, d = h.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + gate1 * self.proj(a)
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class DiT(nn.Module):
    """Predicts v for a noisy clip (B, 3, frames, height, width) in [-1, 1]."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patch_in = nn.Linear(c.patch_dim, c.dim)
        self.register_buffer("pos", sincos_positions(c), persistent=False)
        self.time_mlp = nn.Sequential(nn.Linear(256, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.text_mlp = nn.Sequential(nn.Linear(c.text_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.id_mlp = nn.Sequential(nn.Linear(c.id_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm_out = nn.LayerNorm(c.dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, 2 * c.dim))
        self.patch_out = nn.Linear(c.dim, c.patch_dim)
        for layer in (self.ada_out[1], self.patch_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # U-ViT's last 3x3 convolution over each output frame: lets neighbouring patches agree
        # at their borders (a patch-wise linear head alone leaves a mosaic); starts as identity
        self.conv_out = nn.Conv3d(3, 3, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        nn.init.dirac_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        b = x.shape[0]
        gt, gh, gw = c.grid
        x = x.reshape(b, 3, gt, c.tpatch, gh, c.patch, gw, c.patch)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, gt * gh * gw, c.patch_dim)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        c = self.config
        b = tokens.shape[0]
        gt, gh, gw = c.grid
        x = tokens.reshape(b, gt, gh, gw, 3, c.tpatch, c.patch, c.patch)
        return x.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(b, 3, c.frames, c.height, c.width)

    def condition(self, t: torch.Tensor, text: torch.Tensor, ident: torch.Tensor,
                  has_id: torch.Tensor) -> torch.Tensor:
        """One vector per sample; a zero text vector and has_id = 0 are the 'unconditional' inputs."""
        return (self.time_mlp(timestep_embedding(t)) + self.text_mlp(text)
                + self.id_mlp(ident) * has_id[:, None])

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, ident: torch.Tensor,
                has_id: torch.Tensor) -> torch.Tensor:
        c = self.condition(t, text, ident, has_id)
        h = self.patch_in(self.patchify(x)) + self.pos
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada_out(c)[:, None].chunk(2, dim=-1)
        return self.conv_out(self.unpatchify(self.patch_out(self.norm_out(h) * (1 + scale) + shift)))


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine schedule: x_t = alpha * x0 + sigma * noise."""
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1, 1)


def diffusion_loss(model: DiT, x0: torch.Tensor, text: torch.Tensor, ident: torch.Tensor,
           has_id: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mean squared error of the prediction (clean clip or velocity) at a random time per sample.

    x0-prediction is the default: a small, briefly trained network then errs towards a smooth
    picture, where a velocity (noise) predictor leaves grain that upscaling magnifies.
    """
    b = x0.shape[0]
    t = torch.rand(b, generator=gen) * 0.998 + 0.001
    noise = torch.randn(x0.shape, generator=gen)
    a, s = alpha_sigma(t)
    xt = _bcast(a) * x0 + _bcast(s) * noise
    if model.config.prediction == "x0":
        target = x0
    else:
        target = _bcast(a) * noise - _bcast(s) * x0
    return F.mse_loss(model(xt, t, text, ident, has_id), target)


SAMPLE_THREADS = 1  # a model this small gains nothing from a second thread, and on a busy
# 2-core machine two spin against each other: a 720p fill took 4.1 s of CPU (18 s wall) with
# two threads and 1.2 s (3 to 5 s wall) with one, load average 16 (bench/generator.py)


def sample(model: DiT, text: np.ndarray, ident: np.ndarray | None, **kw) -> np.ndarray:
    """:func:`_sample` on at most SAMPLE_THREADS threads (torch's setting is restored after)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, SAMPLE_THREADS))
    try:
        return _sample(model, text, ident, **kw)
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def _sample(model: DiT, text: np.ndarray, ident: np.ndarray | None, *, seed: int, steps: int,
           init: np.ndarray | None = None, strength: float = 1.0, guidance: float = 2.0,
           on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """One clip (frames, height, width, 3) uint8 for a text vector and an optional identity.

    ``init`` (frames, height, width, 3) uint8 is noised to time ``strength`` and denoised from
    there (SDEdit); without it sampling starts from pure noise. Same seed, same clip.
    """
    c = model.config
    model.eval()
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    noise = torch.randn((1, 3, c.frames, c.height, c.width), generator=gen)
    txt = torch.as_tensor(np.asarray(text, np.float32)).reshape(1, c.text_dim)
    if ident is None:
        idv, has = torch.zeros(1, c.id_dim), torch.zeros(1)
    else:
        idv, has = torch.as_tensor(np.asarray(ident, np.float32)).reshape(1, c.id_dim), torch.ones(1)
    # conditional and unconditional in one batch: [cond, no text + no identity]
    txt2, id2, has2 = torch.cat([txt, torch.zeros_like(txt)]), torch.cat([idv, idv]), \
        torch.cat([has, torch.zeros(1)])
    start = float(strength) if init is not None else 1.0
    ts = torch.linspace(start, 0.0, steps + 1)
    if init is not None:
        x0 = torch.as_tensor(to_model(init))[None]
        a, s = alpha_sigma(ts[0])
        x = a * x0 + s * noise
    else:
        x = noise
    for i in range(steps):
        t = ts[i].repeat(2)
        out_c, out_u = model(torch.cat([x, x]), t, txt2, id2, has2).chunk(2)
        out = out_u + guidance * (out_c - out_u)
        a, s = alpha_sigma(ts[i])
        if c.prediction == "x0":
            x0_hat = out.clamp(-1, 1)
            eps = (x - a * x0_hat) / s.clamp(min=1e-4)
        else:
            x0_hat = (a * x - s * out).clamp(-1, 1)
            eps = s * x + a * out
        a2, s2 = alpha_sigma(ts[i + 1])
        x = a2 * x0_hat + s2 * eps
        if on_step is not None:
            on_step(i)
    return from_model(x[0].numpy())


def to_model(clip: np.ndarray) -> np.ndarray:
    """(frames, h, w, 3) uint8 -> (3, frames, h, w) float32 in [-1, 1]."""
    return np.ascontiguousarray(np.asarray(clip, np.float32).transpose(3, 0, 1, 2) / 127.5 - 1.0)


def from_model(x: np.ndarray) -> np.ndarray:
    """(3, frames, h, w) in [-1, 1] -> (frames, h, w, 3) uint8."""
    return np.clip((x.transpose(1, 2, 3, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FitResult:
    steps: int
    losses: tuple[float, ...]  # mean loss of each logging window, in order
    seconds: float


def fit(model: DiT, clips: np.ndarray, text: np.ndarray, ident: np.ndarray, has_id: np.ndarray,
        weights: np.ndarray, *, seconds: float, max_steps: int, batch: int = 16, lr: float = 1e-3,
        seed: int = 0, drop: float = 0.1, log_every: int = 20, ema: float = 0.99,
        on_step: Callable[[int, float], None] | None = None) -> FitResult:
    """Train in place until ``seconds`` pass or ``max_steps`` are done.

    ``clips`` (N, frames, h0, w0, 3) uint8 are at least the model size; each step takes random
    crops and horizontal flips of a weighted sample, and drops the text and the identity with
    probability ``drop`` each so the sampler can use classifier-free guidance. The model ends
    with an exponential moving average of its weights (``ema`` decay), which samples better
    than the last step's weights after a short training.
    """
    c = model.config
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = 50
    prob = np.asarray(weights, np.float64)
    prob = prob / prob.sum()
    h0, w0 = clips.shape[2], clips.shape[3]
    losses, window = [], []
    started = time.monotonic()
    averaged = [q.detach().clone() for q in model.parameters()]
    model.train()
    step = 0
    while step < max_steps and time.monotonic() - started < seconds:
        idx = rng.choice(len(clips), size=batch, p=prob)
        ys = rng.integers(0, h0 - c.height + 1, size=batch)
        xs = rng.integers(0, w0 - c.width + 1, size=batch)
        crops = np.stack([clips[i, :, y:y + c.height, x:x + c.width] for i, y, x in zip(idx, ys, xs)])
        flip = rng.random(batch) < 0.5
        crops[flip] = crops[flip][:, :, :, ::-1]
        x0 = torch.as_tensor(np.stack([to_model(cl) for cl in crops]))
        txt = torch.as_tensor(text[idx]) * torch.as_tensor(rng.random(batch) >= drop)[:, None]
        has = torch.as_tensor(has_id[idx]) * torch.as_tensor(rng.random(batch) >= drop)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        loss = diffusion_loss(model, x0, txt.float(), torch.as_tensor(ident[idx]).float(), has.float(), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for avg, q in zip(averaged, model.parameters()):
                avg.mul_(decay).add_(q.detach(), alpha=1 - decay)
        value = loss.item()
        window.append(value)
        if on_step is not None:
            on_step(step, value)
        if len(window) == log_every:
            losses.append(float(np.mean(window)))
            window = []
    if window:
        losses.append(float(np.mean(window)))
    with torch.no_grad():
        for avg, q in zip(averaged, model.parameters()):
            q.copy_(avg)
    model.eval()
    return FitResult(steps=step, losses=tuple(losses), seconds=time.monotonic() - started)


def count_parameters(model: DiT) -> int:
    return sum(p.numel() for p in model.parameters())


def save_weights(model: DiT, path: Path, meta: dict) -> None:
    """float16 safetensors with the config and ``meta`` (JSON) in the header; atomic."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "config": json.dumps(asdict(model.config)),
              "meta": json.dumps(meta, sort_keys=True)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=header)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, readable like the rest of the checkout
    tmp.replace(path)


def load_weights(path: Path) -> tuple[DiT, dict]:
    """The model (float32, eval mode) and the training metadata saved with it."""
    from safetensors.torch import load_file

    header = read_header(path)
    known = {f.name for f in fields(DiTConfig)}
    config = DiTConfig(**{k: v for k, v in json.loads(header["config"]).items() if k in known})
    model = DiT(config)
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, json.loads(header.get("meta", "{}"))
