"""Generated clips cached by what made them: the request, the files it read, and the model.

The key hashes the prompt, seed, size, rate, length, the characters in the shot (descriptor,
seed, description and the *contents* of their reference images), the init image's contents
and the model's identity, so changing any of them makes a new clip and nothing else does.
Next to each clip a JSON file keeps its provenance (constructor-shaped, like diffusers'
configs) so it can be regenerated elsewhere, e.g. at higher quality on a GPU.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

from generator.types import GeneratedClip, GenerationRequest, check_request

CACHE_VERSION = 2  # 2: portraits (the face pass) are part of the key


def file_digest(path: str | Path) -> str:
    """sha1 of a file's bytes ('missing' if it cannot be read: the key then changes when it appears)."""
    h = hashlib.sha1()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "missing"
    return h.hexdigest()


def request_key(request: GenerationRequest, model_identity: str) -> str:
    """A hex key for the request as this model would render it."""
    members = [{"name": c.name.lower(), "description": c.description, "seed": c.seed,
                "descriptor": list(c.descriptor) if c.descriptor is not None else None,
                "references": [file_digest(r) for r in c.references],
                "portraits": [file_digest(r) for r in c.portraits]}
               for c in request.members()]
    data = {"v": CACHE_VERSION, "model": model_identity, "prompt": request.prompt,
            "query": request.query, "seconds": round(request.seconds, 6),
            "size": [request.width, request.height], "rate": str(request.fps),
            "seed": request.seed, "characters": [c.lower() for c in request.characters],
            "members": members,
            "init": file_digest(request.init_image) if request.init_image else None}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def clip_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return Path(cache_dir) / f"{key}.mp4", Path(cache_dir) / f"{key}.json"


def lookup(cache_dir: Path, key: str) -> GeneratedClip | None:
    """The cached clip for ``key``, or None (a damaged entry counts as absent)."""
    video, meta = clip_paths(cache_dir, key)
    if not (video.is_file() and meta.is_file()):
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))["clip"]
        clip = GeneratedClip(**{**data, "references": tuple(data["references"])})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return replace(clip, path=str(video), cached=True)


def store(cache_dir: Path, key: str, clip: GeneratedClip, request: GenerationRequest,
          settings: dict) -> None:
    """Write the provenance file beside the clip (atomic); the clip itself is already there."""
    _, meta = clip_paths(cache_dir, key)
    record = {"version": CACHE_VERSION, "key": key, "clip": asdict(clip),
              "request": asdict(request), "settings": settings}
    tmp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(meta)


def generate_cached(request: GenerationRequest, cache_dir: Path, *, identity: str, backend: str,
                    model: str, sample, references, settings: dict,
                    finish=None, preset: str = "veryfast") -> GeneratedClip:
    """The flow every backend shares: check, look in the cache, sample, write the clip, store.

    ``sample()`` returns (frames, used) where ``used`` holds at least seed and prompt;
    ``references(used)`` names the images the clip was conditioned on; ``settings`` are saved
    beside the clip (with ``used``) so it can be made again. ``finish(used)``, when given,
    returns a per-frame step for ``write_clip`` (or None), e.g. the face pass.
    """
    import time

    from generator.video import write_clip

    check_request(request)
    key = request_key(request, identity)
    hit = lookup(cache_dir, key)
    if hit is not None:
        return hit
    started = time.perf_counter()
    frames, used = sample()
    video, _ = clip_paths(cache_dir, key)
    write_clip(frames, video, count=request.frames, width=request.width,
               height=request.height, rate=request.fps, shot_id=request.shot_id,
               finish=finish(used) if finish else None, preset=preset)
    clip = GeneratedClip(path=str(video), frames=request.frames, backend=backend, model=model,
                         seed=used["seed"], prompt=used["prompt"], references=references(used),
                         seconds_taken=round(time.perf_counter() - started, 3))
    store(cache_dir, key, clip, request,
          {"backend": backend, "identity": identity, **settings, **used})
    return clip
