"""The diffusers backend: real diffusion from a diffusers model folder or hub id (the one module
that imports diffusers).

Three shapes of pipeline are served through one call:
- text-to-video (the pipeline takes ``num_frames``): the clip is generated directly;
- text-to-image: one image per shot, from the init frame when there is one (img2img via
  ``from_pipe``), then an image-to-video step when a second model is named
  (``diffusers:T2I_MODEL+I2V_MODEL``), else the image is held for the shot's length;
- a pipeline without a text encoder whose UNet cross-attends to 384-d vectors gets MiniLM
  sentence vectors as ``prompt_embeds`` (the project's offline convention, used by the tests).
Identity: the character's fixed seed and description, SDEdit from a library frame showing
them, and, where the pipeline has an IP-Adapter loaded (an ``ip_adapter/`` folder in the model
folder: the weights and ``image_encoder/``), the first character's first portrait or reference
image (shots without one run the adapter at scale 0). CPU and float32 unless a GPU is present.
"""
from __future__ import annotations

import inspect
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator import cache, conditioning
from generator.errors import GenerationFailed, GeneratorModelError, is_out_of_memory, memory_guard
from generator.types import GeneratedClip, GenerationRequest, check_request
from generator.video import fit_frame, pipeline_frames, to_uint8
from generator.weights import safetensors_keys

logger = logging.getLogger(__name__)

_INSTALL = "pip install diffusers==0.42.1"
MAX_VIDEO_FRAMES = 16  # frames asked of a text-to-video model; the rest are blended
IP_ADAPTER_SCALE = 1.0  # weight of the reference image's attention (diffusers' default)


@dataclass(frozen=True)
class DiffusersSettings:
    steps: int = 25
    strength: float = 0.6  # img2img from the init frame
    guidance: float = 5.0
    max_side: int | None = None  # longer side of the generated picture (default: the model's)
    device: str | None = None  # default: cuda when available, else cpu
    variant: str | None = None  # weights saved as e.g. "fp16" (diffusion_pytorch_model.fp16.*)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_local(model: str) -> bool:
    """A folder path, unless it looks like a hub id ('org/name') and no such folder exists."""
    return Path(model).expanduser().exists() or not _HUB_ID.match(model)


def check_model(model: str) -> None:
    """GeneratorModelError when a local model folder is missing or not a diffusers pipeline."""
    if not model.strip():
        raise GeneratorModelError("diffusers: no model given",
                                  "write --generator diffusers:MODEL_FOLDER_OR_HUB_ID")
    if not is_local(model):
        return
    p = Path(model).expanduser()
    if not p.exists():
        raise GeneratorModelError(f"diffusers model folder does not exist: {p}",
                                  "pass a folder saved with save_pretrained, or a hub id such as "
                                  "org/name on a machine with internet")
    if not p.is_dir() or not (p / "model_index.json").is_file():
        raise GeneratorModelError(
            f"{p} is not a diffusers pipeline folder (no model_index.json)",
            "pass the folder that DiffusionPipeline.save_pretrained wrote (it holds "
            "model_index.json and one folder per component)")
    try:
        json.loads((p / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GeneratorModelError(f"{p / 'model_index.json'} is unreadable ({exc})",
                                  "re-save the pipeline with save_pretrained") from None


OPTIONAL = ("safety_checker", "feature_extractor", "image_encoder")  # a pull may leave them out


def _missing_components(model: str) -> dict:
    """Components saved as null (e.g. no text encoder), and optional ones whose folder is not
    there (a pull takes no safety checker): passed as None so loading accepts them."""
    if not is_local(model):
        return {}
    folder = Path(model).expanduser()
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return {k: None for k, v in index.items()
            if not k.startswith("_") and isinstance(v, list)
            and (not v or v[0] is None or (k in OPTIONAL and not (folder / k).is_dir()))}


class DiffusersGenerator:
    backend = "diffusers"
    draws_faces = True  # a real model may draw one: the measured identity check decides

    def __init__(self, model: str, settings: DiffusersSettings = DiffusersSettings(),
                 i2v: str | None = None, *, label: str | None = None,
                 ip_adapter: tuple[Path, str, str] | None = None) -> None:
        """``label``: the model's name in provenance and cache keys (a pulled catalogue model:
        NAME@REVISION) instead of a fingerprint of its folder. ``ip_adapter``: (folder,
        subfolder, weights file) of an IP-Adapter to load into the main pipeline (a pulled
        identity model), instead of a ``MODEL/ip_adapter/`` folder."""
        check_model(model)
        if i2v is not None:
            check_model(i2v)
        self.model = str(Path(model).expanduser().resolve()) if is_local(model) else model
        self.i2v = (str(Path(i2v).expanduser().resolve()) if i2v and is_local(i2v) else i2v)
        self.settings = settings
        self.label = label
        self.ip_adapter = ip_adapter
        self._pipes: dict[str, object] = {}
        self._ip_adapter: set[str] = set()  # pipelines with an IP-Adapter loaded
        self._identity = None

    # -- loading ---------------------------------------------------------------------------
    def identity(self) -> str:
        if self._identity is None:
            parts = [self.label or self._model_id(self.model)] + (
                [self._model_id(self.i2v)] if self.i2v else [])
            if self.ip_adapter is not None:
                parts.append(f"ip:{self._model_id(str(self.ip_adapter[0]))}/"
                             f"{self.ip_adapter[1]}/{self.ip_adapter[2]}")
            s = self.settings
            self._identity = (f"diffusers-1:{'+'.join(parts)}:steps={s.steps}:"
                              f"strength={s.strength}:guidance={s.guidance}:side={s.max_side}")
        return self._identity

    @staticmethod
    def _model_id(model: str) -> str:
        """Hub id as is; a folder by its configs' contents and its weights' sizes and times."""
        if not is_local(model):
            return model
        h = []
        for f in sorted(Path(model).rglob("*")):
            if f.is_file():
                st = f.stat()
                h.append(f"{f.relative_to(model)}:{st.st_size}:{st.st_mtime_ns}"
                         if f.suffix in (".safetensors", ".bin", ".ckpt", ".pt")
                         else f"{f.relative_to(model)}:{cache.file_digest(f)}")
        import hashlib

        return f"{Path(model).name}@{hashlib.sha1('|'.join(h).encode()).hexdigest()[:16]}"

    def _device(self):
        import torch

        from retrieval.embed import resolve_device

        device = resolve_device(self.settings.device)  # --device, else CUDA when present
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        return device, dtype

    def pipe(self, which: str = "main"):
        """The loaded pipeline ('main', 'img2img' or 'i2v'), loaded once."""
        if which in self._pipes:
            return self._pipes[which]
        try:
            import diffusers
            from diffusers.utils import logging as dlog
        except ImportError as exc:
            raise GeneratorModelError(f"the diffusers backend needs diffusers ({exc})", _INSTALL) from None
        dlog.set_verbosity_error()
        if which == "img2img":
            try:
                p = diffusers.AutoPipelineForImage2Image.from_pipe(self.pipe("main"))
            except (ValueError, KeyError) as exc:
                logger.warning("%s has no image-to-image form (%s); init images are not used",
                               self.model, exc)
                p = None
            self._pipes[which] = p
            return p
        model = self.model if which == "main" else self.i2v
        device, dtype = self._device()
        try:
            variant = {"variant": self.settings.variant} if self.settings.variant else {}
            p = diffusers.DiffusionPipeline.from_pretrained(
                model, dtype=dtype, local_files_only=is_local(model), **variant,
                **_missing_components(model))
            p.to(device)
        except Exception as exc:  # noqa: BLE001 - loaders raise many kinds; all mean "unusable"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if is_out_of_memory(exc):
                raise GeneratorModelError(f"the diffusers pipeline {model} does not fit in "
                                          f"{device} memory ({first[:200]})",
                                          "use a smaller model, or --generator builtin") from None
            where = ("check the folder" if is_local(model) else
                     f"no folder named {model} exists here; as a hub id it needs internet (or "
                     f"the hub cache) the first time")
            raise GeneratorModelError(f"cannot load the diffusers pipeline {model}: {first[:300]}",
                                      where) from None
        self._load_ip_adapter(p, model, which)
        self._pipes[which] = p
        return p

    def has_ip_adapter(self) -> bool:
        """Whether the main pipeline (loaded now if it is not yet) has an IP-Adapter loaded."""
        self.pipe("main")
        return "main" in self._ip_adapter

    def _load_ip_adapter(self, p, model: str, which: str) -> None:
        """Load ``MODEL/ip_adapter/*.safetensors`` when there is one (identity from references).

        The image encoder is read from ``ip_adapter/image_encoder/`` (diffusers' default) unless
        the pipeline has one of its own. A file that cannot be read is a GeneratorModelError
        naming it: a model folder with a broken adapter is a broken model, not a silent fallback.
        """
        root, subfolder, weight_name = (
            self.ip_adapter if self.ip_adapter is not None and which == "main"
            else (Path(model), "ip_adapter", ""))
        folder = Path(root) / subfolder if is_local(str(root)) else None
        if folder is None or not folder.is_dir():
            return
        if not hasattr(p, "load_ip_adapter"):
            logger.warning("%s has an ip_adapter folder but %s cannot load one; reference "
                           "images are not used", model, type(p).__name__)
            return
        weights = ([folder / weight_name] if weight_name else
                   sorted(f for f in folder.iterdir()
                          if f.is_file() and f.suffix in (".safetensors", ".bin")))
        if not weights:
            logger.warning("%s has no .safetensors or .bin weights; no IP-Adapter is loaded", folder)
            return
        if len(weights) > 1:
            logger.warning("%s holds %d weight files; loading %s", folder, len(weights),
                           weights[0].name)
        encoder = folder / "image_encoder"
        if getattr(p, "image_encoder", None) is None and not (encoder / "config.json").is_file():
            raise GeneratorModelError(
                f"the IP-Adapter {weights[0]} has no image encoder: {encoder} is missing or has "
                f"no config.json",
                "save the adapter's CLIP image encoder (CLIPVisionModelWithProjection."
                "save_pretrained) there, or remove the ip_adapter folder")
        keys = safetensors_keys(weights[0]) if weights[0].suffix == ".safetensors" else None
        if keys is not None and not any(k.startswith("image_proj.") for k in keys):
            raise GeneratorModelError(
                f"{weights[0]} is not an IP-Adapter: it has no image_proj.* tensors",
                "use the adapter's .safetensors file (image_proj.* and ip_adapter.* tensors), "
                "or remove the ip_adapter folder")
        for f in sorted(encoder.glob("*.safetensors")):
            safetensors_keys(f)
        try:
            p.load_ip_adapter(str(Path(root)), subfolder=subfolder, weight_name=weights[0].name,
                              local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - safetensors, torch and transformers all raise
            first = " ".join(str(exc).split())[:300] or type(exc).__name__
            if is_out_of_memory(exc):
                raise GeneratorModelError(f"the IP-Adapter {weights[0]} does not fit in memory "
                                          f"({first[:200]})", "remove the ip_adapter folder, "
                                          "or use a smaller model") from None
            raise GeneratorModelError(
                f"cannot load the IP-Adapter {weights[0]} (image encoder {encoder}): "
                f"{type(exc).__name__}: {first[:300]}",
                "replace the adapter's files with ones made for this model's UNet, or remove "
                "the ip_adapter folder to generate without reference images") from None
        self._ip_adapter.add(which)

    def _ip_adapter_args(self, p, refs: list[str], shot_id: str) -> tuple[dict, str | None]:
        """``ip_adapter_image`` for a pipeline with an IP-Adapter loaded, and the image used.

        The first reference/portrait at full scale; without one, a blank image at scale 0 (the
        adapter's attention is skipped, so the picture is exactly the plain model's: a loaded
        adapter otherwise makes the UNet fail on every shot without a character).
        """
        from PIL import Image, UnidentifiedImageError

        if not refs:
            p.set_ip_adapter_scale(0.0)
            return {"ip_adapter_image": [Image.new("RGB", (64, 64))]}, None
        try:
            with Image.open(refs[0]) as im:
                image = im.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise GenerationFailed(f"shot {shot_id}: reference image unusable: {refs[0]} ({exc})",
                                   "replace it with a photo (jpg, png, webp)") from None
        p.set_ip_adapter_scale(IP_ADAPTER_SCALE)
        return {"ip_adapter_image": [image]}, refs[0]

    # -- generating ------------------------------------------------------------------------
    def _size(self, p, request: GenerationRequest) -> tuple[int, int]:
        """Generation size: the film's aspect, longer side at the model's native size."""
        unet = getattr(p, "unet", None) or getattr(p, "transformer", None)
        scale = int(getattr(p, "vae_scale_factor", 8) or 8)
        native = self.settings.max_side
        if native is None:
            sample = getattr(getattr(unet, "config", None), "sample_size", 64) or 64
            sample = sample[0] if isinstance(sample, (list, tuple)) else sample
            native = int(sample) * scale
        blocks = len(getattr(getattr(unet, "config", None), "down_block_types", ()) or (1,))
        multiple = max(8, scale * 2 ** max(0, blocks - 1))
        ratio = request.width / request.height
        w, h = (native, native / ratio) if ratio >= 1 else (native * ratio, native)
        return (max(multiple, round(w / multiple) * multiple),
                max(multiple, round(h / multiple) * multiple))

    def _text_args(self, p, prompt: str) -> dict:
        if getattr(p, "text_encoder", None) is not None:
            return {"prompt": prompt, "negative_prompt": ""}
        import torch

        from retrieval.embed import TEXT_DIM, encode_texts

        unet = getattr(p, "unet", None)
        dim = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
        if dim != TEXT_DIM:
            raise GeneratorModelError(
                f"{self.model} has no text encoder and its UNet expects {dim}-d text, not "
                f"MiniLM's {TEXT_DIM}-d", "use a pipeline with its own text encoder")
        device, dtype = self._device()
        vec = encode_texts([prompt, ""])
        emb = torch.as_tensor(vec, dtype=dtype, device=device)[:, None, :]
        return {"prompt_embeds": emb[:1], "negative_prompt_embeds": emb[1:]}

    def sample(self, request: GenerationRequest, *, progress: bool = False) -> tuple[np.ndarray, dict]:
        """Frames (T, h, w, 3) uint8 for a request (T = 1 for a held still), and what was used."""
        import torch

        check_request(request)
        cast = conditioning.members(request)
        prompt = conditioning.full_prompt(request, cast)
        seed = conditioning.effective_seed(request, cast)
        p = self.pipe("main")
        width, height = self._size(p, request)
        params = inspect.signature(p.__call__).parameters
        device, _ = self._device()
        gen = torch.Generator(device="cpu").manual_seed(seed)
        common = dict(num_inference_steps=self.settings.steps, guidance_scale=self.settings.guidance,
                      generator=gen, output_type="np", **self._text_args(p, prompt))
        common = {k: v for k, v in common.items()  # e.g. LCM pipelines take no negative prompt
                  if k in params or k == "ip_adapter_image"}
        refs = [r for c in cast for r in (c.portraits or c.references)]  # library portraits too
        ip_image = None
        if "main" in self._ip_adapter:
            ip_args, ip_image = self._ip_adapter_args(p, refs, request.shot_id)
            common.update(ip_args)
        init = conditioning.load_init(request)
        used = {"seed": seed, "prompt": prompt, "size": [width, height], "kind": "",
                "init_image": None, "ip_adapter_image": ip_image}
        for pipe in self._pipes.values():
            if pipe is not None:
                pipe.set_progress_bar_config(desc=f"generate {request.shot_id}",
                                             disable=not progress, leave=False)
        with memory_guard(request.shot_id, f"the diffusers pipeline {Path(self.model).name}"):
            try:
                if "num_frames" in params and "image" not in params:
                    used["kind"] = "text-to-video"
                    out = p(height=height, width=width,
                            num_frames=min(request.frames, MAX_VIDEO_FRAMES), **common)
                    frames = pipeline_frames(out, request.shot_id)
                else:
                    img2img = self.pipe("img2img") if init is not None else None
                    if img2img is not None:
                        from PIL import Image

                        used["kind"], used["init_image"] = "image-to-image", request.init_image
                        img2img.set_progress_bar_config(desc=f"generate {request.shot_id}",
                                                        disable=not progress, leave=False)
                        picture = Image.fromarray(fit_frame(init, width, height))
                        out = img2img(image=picture, strength=self.settings.strength, **common)
                    else:
                        used["kind"] = "text-to-image"
                        out = p(height=height, width=width, **common)
                    frames = to_uint8(np.asarray(out.images), request.shot_id)[:1]
                    if self.i2v:
                        used["kind"] += "+image-to-video"
                        frames = self._animate(frames[0], request, seed, progress)
            finally:
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
        if frames.size == 0:
            raise GenerationFailed(f"shot {request.shot_id}: the pipeline returned no picture")
        return frames, used

    def _animate(self, image: np.ndarray, request: GenerationRequest, seed: int,
                 progress: bool) -> np.ndarray:
        import torch
        from PIL import Image

        p = self.pipe("i2v")
        p.set_progress_bar_config(desc=f"animate {request.shot_id}", disable=not progress,
                                  leave=False)
        kwargs = {"image": Image.fromarray(image), "generator": torch.Generator().manual_seed(seed),
                  "output_type": "np"}
        if "num_frames" in inspect.signature(p.__call__).parameters:
            kwargs["num_frames"] = min(request.frames, MAX_VIDEO_FRAMES)
        return pipeline_frames(p(**kwargs), request.shot_id)

    def generate(self, request: GenerationRequest, *, cache_dir: Path,
                 progress: bool = True) -> GeneratedClip:
        def references(used: dict) -> tuple[str, ...]:
            refs = tuple(dict.fromkeys(r for c in conditioning.members(request)
                                       for r in c.references + c.portraits))
            return refs + ((used["init_image"],) if used["init_image"] else ())

        return cache.generate_cached(
            request, cache_dir, identity=self.identity(), backend=self.backend,
            model=self.model + (f"+{self.i2v}" if self.i2v else ""),
            sample=lambda: self.sample(request, progress=progress), references=references,
            settings={"steps": self.settings.steps, "guidance": self.settings.guidance,
                      "strength": self.settings.strength})


def build_tiny_pipeline(folder: Path, *, video: bool = False, sample_size: int = 16,
                        ip_adapter: bool = False) -> Path:
    """Save a tiny random-weight pipeline (the real diffusers classes) to ``folder``.

    For tests and benchmarks on machines without model weights: text-to-image
    (UNet2DConditionModel) or text-to-video (UNet3DConditionModel), an AutoencoderKL and DDIM,
    cross_attention_dim=384 so MiniLM vectors condition it. Seeded: the same folder each time.
    ``ip_adapter`` (text-to-image only) adds ``ip_adapter/`` as a real IP-Adapter release lays
    it out (see ``build_tiny_ip_adapter``); the pipeline's own weights stay the same.
    """
    import diffusers
    import torch

    if video and ip_adapter:
        raise ValueError("diffusers' text-to-video pipeline cannot load an IP-Adapter")
    torch.manual_seed(0)
    kind = "3D" if video else "2D"
    unet_class = diffusers.UNet3DConditionModel if video else diffusers.UNet2DConditionModel
    unet = unet_class(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=(f"CrossAttnDownBlock{kind}", f"DownBlock{kind}"),
        up_block_types=(f"UpBlock{kind}", f"CrossAttnUpBlock{kind}"), cross_attention_dim=384,
        attention_head_dim=4, norm_num_groups=8)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8, sample_size=32,
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2)
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    if video:
        pipe = diffusers.TextToVideoSDPipeline(vae=vae, unet=unet, scheduler=scheduler,
                                               text_encoder=None, tokenizer=None)
    else:
        pipe = diffusers.StableDiffusionPipeline(
            vae=vae, unet=unet, scheduler=scheduler, text_encoder=None, tokenizer=None,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    if ip_adapter:
        build_tiny_ip_adapter(Path(folder) / "ip_adapter", unet)
    return Path(folder)


TINY_IP_ADAPTER = "ip-adapter_tiny.safetensors"


def build_tiny_ip_adapter(folder: Path, unet, *, clip_dim: int = 32, image_size: int = 32) -> Path:
    """Save a random-weight IP-Adapter for ``unet`` to ``folder`` (returns the weights file).

    The layout of the released ``ip-adapter_sd15.safetensors`` that diffusers'
    ``load_ip_adapter`` reads: ``image_proj.proj.*`` (CLIP image embedding -> 4 tokens of the
    UNet's cross-attention width) and ``image_proj.norm.*``, then ``ip_adapter.{k}.to_k_ip`` /
    ``to_v_ip`` for the k-th cross-attention layer (k = 1, 3, 5, ... in ``attn_processors``
    order, hidden size by block as diffusers derives it), and beside them ``image_encoder/``, a
    tiny CLIPVisionModelWithProjection whose projection gives the ``clip_dim``-d embedding.
    diffusers makes the CLIPImageProcessor itself (at the encoder's ``image_size``).
    """
    import torch
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    config = unet.config
    cross = int(config.cross_attention_dim)
    tokens = 4  # the base IP-Adapter's image tokens
    proj = ImageProjection(cross_attention_dim=cross, image_embed_dim=clip_dim,
                           num_image_text_embeds=tokens)
    tensors = {f"image_proj.{k.replace('image_embeds', 'proj')}": v
               for k, v in proj.state_dict().items()}
    key_id = 1
    channels = list(config.block_out_channels)
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or "motion_modules" in name:
            continue  # self-attention: no image branch
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = channels[::-1][int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        for which in ("to_k_ip", "to_v_ip"):
            layer = torch.nn.Linear(cross, hidden, bias=False)
            tensors[f"ip_adapter.{key_id}.{which}.weight"] = layer.weight
        key_id += 2
    weights = folder / TINY_IP_ADAPTER
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(weights))
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
        image_size=image_size, patch_size=8, projection_dim=clip_dim))
    encoder.save_pretrained(folder / "image_encoder")
    return weights
