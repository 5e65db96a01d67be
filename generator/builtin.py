"""The builtin backend: the project's own small space-time diffusion transformer.

Loads weights trained by `montage generator train` (default: the ones shipped in
assets/generator/, trained on the demo library), generates a few tiny frames by SDEdit from the
nearest library frame, conditioned on the shot's text and the character's face descriptor, and
writes them at the film's size and rate. It draws no recognisable face (``draws_faces``): a
shot that names a character with a known face is left to a backend that can show them
(:mod:`generator.standin`), and a face is never pasted onto its blur. Weights load on the first
generated shot, not at construction.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from generator import cache, conditioning
from generator.errors import GeneratorModelError, memory_guard
from generator.types import GeneratedClip, GenerationRequest, check_request
from generator.weights import read_header

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = ROOT / "assets" / "generator" / "builtin.safetensors"
VERSION = "builtin-4"  # bump when sampling changes what the same weights produce (4: no face pass)


@dataclass(frozen=True)
class BuiltinSettings:
    steps: int = 16  # DDIM steps over the whole schedule (fewer with SDEdit)
    strength: float = 0.6  # SDEdit: how far the init frame is noised (1.0 = from pure noise)
    guidance: float = 2.0  # classifier-free guidance scale


class BuiltinGenerator:
    """``generate`` one shot at a time; the model stays loaded between shots."""

    backend = "builtin"
    draws_faces = False  # 48x27 pixels: no face a person (or dlib) could recognise

    def __init__(self, weights: Path = DEFAULT_WEIGHTS,
                 settings: BuiltinSettings = BuiltinSettings()) -> None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise GeneratorModelError(
                f"builtin generator weights not found: {weights}",
                "train them: montage generator train --library YOUR_FOOTAGE --out FILE, then "
                "--generator builtin:FILE")
        try:
            self.meta = read_header(weights)
        except (OSError, ValueError) as exc:
            raise GeneratorModelError(f"{weights}: not a builtin generator weights file ({exc})",
                                      "retrain it with montage generator train") from None
        self.weights = weights.resolve()
        self.model = str(self.weights)
        self.settings = settings
        self._net = None
        self._identity = None

    def identity(self) -> str:
        if self._identity is None:
            s = self.settings
            self._identity = (f"{VERSION}:{cache.file_digest(self.weights)}:"
                              f"steps={s.steps}:strength={s.strength}:guidance={s.guidance}")
        return self._identity

    def net(self):
        """The DiT, loaded once."""
        if self._net is None:
            from generator.dit import load_weights

            try:
                self._net, _ = load_weights(self.weights)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise GeneratorModelError(f"{self.weights}: cannot load the weights ({exc})",
                                          "retrain them with montage generator train") from None
        return self._net

    def sample(self, request: GenerationRequest, *, progress: bool = False) -> tuple[np.ndarray, dict]:
        """The model's frames (frames, h, w, 3) uint8 for a request, and what conditioned them."""
        from generator.video import fit_frame
        from retrieval.embed import encode_texts

        check_request(request)
        cast = conditioning.members(request)
        net = self.net()
        cfg = net.config
        text = conditioning.condition_text(request, cast)
        ident = conditioning.identity(cast)
        seed = conditioning.effective_seed(request, cast)
        image = conditioning.load_init(request)
        init = None
        if image is not None:
            init = np.repeat(fit_frame(image, cfg.width, cfg.height)[None], cfg.frames, axis=0)
        s = self.settings
        steps = max(1, round(s.steps * (s.strength if init is not None else 1.0)))
        bar = _bar(request.shot_id, steps, progress)
        try:
            with memory_guard(request.shot_id, "the builtin generator"):
                frames = _sample(net, encode_texts([text])[0], ident, seed=seed, steps=steps,
                                 init=init, strength=s.strength, guidance=s.guidance,
                                 on_step=(lambda i: bar.update(1)) if bar else None)
        finally:
            if bar:
                bar.close()
        refs = tuple(r for c in cast for r in c.references)
        used = {"seed": seed, "prompt": conditioning.full_prompt(request, cast),
                "condition_text": text, "identity": ident is not None, "steps": steps,
                "references": refs + ((request.init_image,) if request.init_image else ())}
        return frames, used

    def generate(self, request: GenerationRequest, *, cache_dir: Path,
                 progress: bool = True) -> GeneratedClip:
        return cache.generate_cached(
            request, cache_dir, identity=self.identity(), backend=self.backend, model=self.model,
            sample=lambda: self.sample(request, progress=progress),
            references=lambda used: used["references"], settings=asdict(self.settings))


def _sample(net, vector, ident, **kw) -> np.ndarray:
    from generator.dit import sample

    return sample(net, vector, ident, **kw)


def _bar(shot_id: str, steps: int, progress: bool):
    """A tqdm bar with ETA for one shot's denoising steps (None when quiet)."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=f"generate {shot_id}", unit="step", file=sys.stderr,
                leave=False, dynamic_ncols=True)
