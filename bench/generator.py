"""Generated shots on this machine: time per shot, text match, identity consistency.

`python bench/generator.py [--weights FILE] [--shots N]` prints JSON lines:
- ``builtin_time``: seconds per generated shot of the demo script (film size 1280x720, 25 fps,
  the shot's planned length), SDEdit from the nearest library frame, cache off;
- ``text_match``: cosine between the shot's query and a generated frame with the project's proxy
  embedder, against random library frames, the init frame itself, and generation without an
  init frame (what the model adds on its own);
- ``identity``: dlib descriptor distances between faces in generated shots of the same
  character and of different characters (characters taken from the library's faces), and to
  the character's library identity;
- ``diffusers_time``: the diffusers path end to end with a tiny random pipeline (CPU here).
Numbers depend on machine load; the load average is printed with them.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.builtin import DEFAULT_WEIGHTS, BuiltinGenerator  # noqa: E402
from generator.conditioning import init_frame, pick_init_hit  # noqa: E402
from generator.types import Character, GenerationRequest  # noqa: E402
from montage.demo import DEMO, fetch_demo_library  # noqa: E402
from planner.plan import load_script  # noqa: E402
from retrieval.index import build_index, open_index  # noqa: E402
from retrieval.media import read_frames, read_still  # noqa: E402


def emit(**data) -> None:
    print(json.dumps(data), flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def middle(path: str) -> np.ndarray:
    from retrieval.media import probe

    return read_frames(Path(path), [probe(Path(path)).duration / 2])[0]


def library_frame(root: Path, shot) -> np.ndarray:
    p = root / shot.path
    return read_still(p) if shot.is_still else read_frames(p, [(shot.start + shot.end) / 2])[0]


def bench_builtin(gen, root: Path, index, plan, work: Path, n: int):
    """Generate n demo shots; return per-shot rows for the text-match step."""
    from retrieval.embed import make_embedder

    shots = plan.shots[:n]
    hits = index.search([s.query or s.text for s in shots], top=5)
    rows, times = [], []
    for k, (shot, h) in enumerate(zip(shots, hits)):
        best = pick_init_hit(h, [])
        init = str(init_frame(root, best.shot, work / "init")) if best else None
        req = GenerationRequest(shot.id, shot.text, shot.query, shot.characters, shot.duration,
                                1280, 720, "25", seed=k, init_image=init)
        t = time.perf_counter()
        clip = gen.generate(req, cache_dir=work / f"cache-{k}", progress=False)
        times.append(time.perf_counter() - t)
        free = gen.generate(replace(req, init_image=None), cache_dir=work / f"free-{k}",
                            progress=False)
        rows.append((shot, clip.path, free.path, init))
    emit(bench="builtin_time", shots=len(times), seconds_per_shot_mean=round(float(np.mean(times)), 3),
         seconds_per_shot_median=round(float(np.median(times)), 3),
         seconds_first=round(times[0], 3), film_size="1280x720", rate="25",
         shot_seconds_mean=round(float(np.mean([s.duration for s in shots])), 2),
         steps=gen.settings.steps, strength=gen.settings.strength, load_avg=load(),
         cpus=os.cpu_count(), note="the first shot includes loading the weights (MiniLM was loaded by the search)")

    emb = make_embedder("proxy")
    rng = np.random.default_rng(0)
    lib_shots = list(index.shots)
    randoms = [library_frame(root, lib_shots[i]) for i in rng.integers(0, len(lib_shots), 20)]
    r_vec = emb.embed_images(randoms, [""] * len(randoms))
    gen_s, free_s, init_s, rand_s = [], [], [], []
    for shot, path, free, init in rows:
        q = emb.embed_queries([shot.query or shot.text])[0]
        imgs = [middle(path), middle(free)] + ([read_still(Path(init))] if init else [])
        v = emb.embed_images(imgs, [""] * len(imgs))
        gen_s.append(float(v[0] @ q))
        free_s.append(float(v[1] @ q))
        if init:
            init_s.append(float(v[2] @ q))
        rand_s.append(float((r_vec @ q).mean()))
    emit(bench="text_match", embedder=emb.name, shots=len(rows),
         generated_sdedit=round(float(np.mean(gen_s)), 4),
         generated_no_init=round(float(np.mean(free_s)), 4),
         init_frame=round(float(np.mean(init_s)), 4) if init_s else None,
         random_library_frames=round(float(np.mean(rand_s)), 4),
         sdedit_beats_random=int(sum(g > r for g, r in zip(gen_s, rand_s))),
         no_init_beats_random=int(sum(g > r for g, r in zip(free_s, rand_s))))


def bench_identity(gen, root: Path, index, work: Path) -> None:
    from retrieval.faces import detect_faces

    faced = [s for s in index.shots if s.features and s.features.face_descriptors]
    if len(faced) < 2:
        emit(bench="identity", skipped="the library has fewer than two shots with faces")
        return
    cast = [Character(name=f"P{i}", seed=100 + i, descriptor=tuple(s.features.face_descriptors[0]))
            for i, s in enumerate(faced[:2])]
    # the identity signal itself: faces in several frames of the same library shots
    per_shot = []
    for shot in faced[:2]:
        times = [shot.start + (shot.end - shot.start) * f for f in (0.2, 0.5, 0.8)]
        frames = ([read_still(root / shot.path)] if shot.is_still
                  else read_frames(root / shot.path, times))
        per_shot.append([np.asarray(f[0].descriptor) for f in map(detect_faces, frames)
                         if f and f[0].descriptor])
    same = [float(np.linalg.norm(a - b)) for faces in per_shot
            for a, b in itertools.combinations(faces, 2)]
    diff = [float(np.linalg.norm(a - b)) for a in per_shot[0] for b in per_shot[1]]
    emit(bench="identity", mode="library_frames", characters=[s.id for s in faced[:2]],
         faces_found=sum(map(len, per_shot)),
         same_character_mean=round(float(np.mean(same)), 4) if same else None,
         different_character_mean=round(float(np.mean(diff)), 4) if diff else None)
    actions = ["looks at the camera", "smiles", "talks on the phone", "turns around"]
    found: dict[tuple[str, str], list] = {}
    tried = 0
    for c, shot in zip(cast, faced[:2]):
        init = str(init_frame(root, shot, work / "init"))
        for mode in ("sdedit", "no_init"):
            for k, act in enumerate(actions):
                req = GenerationRequest(f"id-{c.name}-{mode}-{k}", f"{c.name} {act}.",
                                        f"{c.name} {act}", (c.name,), 2.0, 1280, 720, "25",
                                        seed=k, init_image=init if mode == "sdedit" else None,
                                        cast=tuple(cast))
                clip = gen.generate(req, cache_dir=work / "id", progress=False)
                tried += 1
                faces = detect_faces(middle(clip.path))
                if faces and faces[0].descriptor:
                    found.setdefault((mode, c.name), []).append(np.asarray(faces[0].descriptor))
    for mode in ("sdedit", "no_init"):
        same, diff, to_lib = [], [], []
        for c in cast:
            mine = found.get((mode, c.name), [])
            same += [float(np.linalg.norm(a - b)) for a, b in itertools.combinations(mine, 2)]
            to_lib += [float(np.linalg.norm(a - np.asarray(c.descriptor))) for a in mine]
        a_faces, b_faces = (found.get((mode, c.name), []) for c in cast)
        diff = [float(np.linalg.norm(a - b)) for a in a_faces for b in b_faces]
        emit(bench="identity", mode=mode, characters=[s.id for s in faced[:2]],
             shots=len(actions) * 2, faces_found=sum(len(found.get((mode, c.name), [])) for c in cast),
             same_character_mean=round(float(np.mean(same)), 4) if same else None,
             different_character_mean=round(float(np.mean(diff)), 4) if diff else None,
             to_library_identity_mean=round(float(np.mean(to_lib)), 4) if to_lib else None,
             library_between_characters=round(float(np.linalg.norm(
                 np.subtract(cast[0].descriptor, cast[1].descriptor))), 4))


def bench_diffusers(work: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("diffusers") is None:
        emit(bench="diffusers_time", skipped="diffusers not installed")
        return
    from generator.diffusers_backend import (DiffusersGenerator, DiffusersSettings,
                                             build_tiny_pipeline)

    build_tiny_pipeline(work / "tiny-sd", sample_size=32)
    gen = DiffusersGenerator(str(work / "tiny-sd"), DiffusersSettings(steps=20))
    times = []
    for k in range(3):
        req = GenerationRequest(f"d{k}", "A violinist plays on a bridge.", "violinist bridge", (),
                                3.0, 1280, 720, "25", seed=k)
        t = time.perf_counter()
        gen.generate(req, cache_dir=work / "dcache", progress=False)
        times.append(time.perf_counter() - t)
    device, _ = gen._device()
    emit(bench="diffusers_time", device=device, steps=20, picture=list(gen._size(gen.pipe(), req)),
         seconds_per_shot=[round(t, 3) for t in times], film_size="1280x720", shot_seconds=3.0,
         load_avg=load(), note="tiny random pipeline: times the real code path, not a real model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--shots", type=int, default=13)
    ap.add_argument("--skip", nargs="*", default=[], choices=("builtin", "identity", "diffusers"))
    args = ap.parse_args()
    emit(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version(),
         load_avg=load(), weights=str(args.weights))
    source = fetch_demo_library()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "library"
        shutil.copytree(source, root)  # the index comes along when it is already built
        build_index(root, "proxy", progress=False)
        index = open_index(root)
        gen = BuiltinGenerator(args.weights)
        plan = load_script(DEMO / "script.txt")
        if "builtin" not in args.skip:
            bench_builtin(gen, root, index, plan, work, args.shots)
        if "identity" not in args.skip:
            bench_identity(gen, root, index, work)
        if "diffusers" not in args.skip:
            bench_diffusers(work)


if __name__ == "__main__":
    main()
