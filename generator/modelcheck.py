"""`montage models check`: load each installed model and time one small inference.

So a user knows what their machine can do with what they pulled: an embedder encodes one
frame and one sentence, an image or video model makes one small picture (at its own step
count), an identity adapter is loaded into an image model it fits and makes one picture from
a reference. A model that needs a GPU is not run on a CPU (said, not hidden); a model that
fails to load is reported with the loader's error. Here in ``generator`` because it loads both
embedders (``retrieval.embed``) and diffusion models (``generator.diffusers_backend``).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from planner.errors import MontageError


@dataclass(frozen=True)
class Checked:
    name: str
    kind: str
    ok: bool
    what: str  # what was run, or why not
    load_s: float = 0.0
    run_s: float = 0.0
    device: str = ""
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "ok": self.ok, "what": self.what,
                "load_s": round(self.load_s, 3), "run_s": round(self.run_s, 3),
                "device": self.device, **self.details}


def check(names: list[str] | None = None, *, size: int = 256) -> list[Checked]:
    """Check the named models (None: every installed one); ``size``: the longer side of the
    picture an image model makes."""
    from retrieval.models import catalogue, entry, status

    entries = [entry(n) for n in names] if names else list(catalogue().values())
    out = []
    for e in entries:
        st = status(e)
        if st.installed is None:
            if names:
                out.append(Checked(e.name, e.kind, False, "not installed"
                                   + (f" ({st.problem})" if st.problem else "")
                                   + f": montage models pull {e.name}"))
            continue
        try:
            out.append(_CHECKS[e.kind](e, size))
        except MontageError as exc:
            out.append(Checked(e.name, e.kind, False, exc.message))
        except Exception as exc:  # noqa: BLE001 - a broken model is reported, not raised
            out.append(Checked(e.name, e.kind, False, f"{type(exc).__name__}: {exc}"[:400]))
    return out


def _device() -> str:
    from retrieval.embed import resolve_device

    return resolve_device()


def _embedder(e, size: int) -> Checked:
    import numpy as np

    from retrieval.embed import make_embedder

    t = time.perf_counter()
    emb = make_embedder(e.name)
    dim = emb.dim
    emb.embed_queries(["a warm-up"])  # loads the model
    loaded = time.perf_counter() - t
    frame = np.random.default_rng(0).integers(0, 256, (size * 9 // 16, size, 3), dtype=np.uint8)
    t = time.perf_counter()
    vectors = emb.embed_images([frame], [""])
    emb.embed_queries(["a person walks through a market"])
    run = time.perf_counter() - t
    ok = vectors.shape == (1, dim) and dim == (e.dim or dim)
    return Checked(e.name, e.kind, ok, f"one {size}x{size * 9 // 16} frame and one sentence "
                   f"embedded ({dim}-d)", loaded, run, _device(), {"dim": dim})


def _request(size: int, characters: tuple = (), cast: tuple = ()):
    from generator.types import GenerationRequest

    h = max(16, size * 9 // 16 // 2 * 2)
    return GenerationRequest(shot_id="check", prompt="A street at dusk with people walking.",
                             query="street dusk people", characters=characters, seconds=0.2,
                             width=size, height=h, rate="25", seed=1, cast=cast)


def _generator(e, size: int) -> Checked:
    from generator.factory import catalogue_generator

    if e.needs == "gpu" and not _device().startswith("cuda"):
        return Checked(e.name, e.kind, True, "not run: it needs a GPU (none usable here)",
                       device="cpu")
    gen = catalogue_generator(e.name)
    gen.settings = replace(gen.settings, max_side=min(size, gen.settings.max_side or size))
    t = time.perf_counter()
    gen.pipe("main")
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    frames, used = gen.sample(_request(size))
    run = time.perf_counter() - t
    return Checked(e.name, e.kind, frames.size > 0,
                   f"one {used['size'][0]}x{used['size'][1]} {used['kind']} in "
                   f"{gen.settings.steps} step(s)", loaded, run, _device(),
                   {"frames": int(frames.shape[0])})


def _identity(e, size: int) -> Checked:
    from PIL import Image

    from generator.factory import catalogue_generator, identity_adapter
    from generator.types import Character
    from retrieval.models import catalogue, status

    base = next((x for x in sorted(catalogue().values(), key=lambda x: (-x.rank, x.name))
                 if x.kind == "image" and x.family == e.works_with
                 and status(x).installed is not None and identity_adapter(x)), None)
    if base is None:
        return Checked(e.name, e.kind, True, f"not run: it needs an installed image model of "
                                             f"the {e.works_with} family to load into")
    gen = catalogue_generator(base.name)
    gen.settings = replace(gen.settings, max_side=min(size, gen.settings.max_side or size))
    t = time.perf_counter()
    has = gen.has_ip_adapter()
    loaded = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        face = Path(tmp) / "reference.png"
        Image.new("RGB", (128, 128), (180, 140, 120)).save(face)
        who = Character("Check", references=(str(face),), portraits=(str(face),))
        t = time.perf_counter()
        frames, used = gen.sample(_request(size, ("Check",), (who,)))
        run = time.perf_counter() - t
    return Checked(e.name, e.kind, has and used.get("ip_adapter_image") is not None,
                   f"loaded into {base.name}; one picture from a reference image", loaded, run,
                   _device(), {"with": base.name})


_CHECKS = {"embedder": _embedder, "image": _generator, "video": _generator,
           "identity": _identity}

__all__ = ["Checked", "check"]
