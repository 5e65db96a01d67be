"""Generated shots on this machine: time per shot, text match, identity consistency.

`python bench/generator.py [--weights FILE] [--shots N]` prints JSON lines:
- ``builtin_time``: seconds per generated shot of the demo script (film size 1280x720, 25 fps,
  the shot's planned length), SDEdit from the nearest library frame, cache off;
- ``text_match``: cosine between the shot's query and a generated frame with the project's proxy
  embedder, against random library frames, the init frame itself, and generation without an
  init frame (what the model adds on its own);
- ``identity``: two people of the demo library become characters (identity and portraits from
  their face clusters); each is generated in 4 shots set in another library shot's scene and
  from noise, with the face pass and without it (the model alone). dlib then looks for faces in
  3 frames of each encoded clip; distances between the same character's faces in different
  shots, to that character's library faces, and between the two characters;
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
from montage.cli.demo import DEMO, fetch_demo_library  # noqa: E402
from planner.plan import load_script  # noqa: E402
from retrieval.index.build import build_index
from retrieval.search.footage import open_index  # noqa: E402
from retrieval.media.decode import probe, read_frames, read_still  # noqa: E402


def emit(**data) -> None:
    print(json.dumps(data), flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def middle(path: str) -> np.ndarray:
    return read_frames(Path(path), [probe(Path(path)).duration / 2])[0]


def library_frame(root: Path, shot) -> np.ndarray:
    p = root / shot.path
    return read_still(p) if shot.is_still else read_frames(p, [(shot.start + shot.end) / 2])[0]


def bench_builtin(gen, root: Path, index, plan, work: Path, n: int):
    """Generate n demo shots; return per-shot rows for the text-match step."""
    from retrieval.embed.registry import make_embedder

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


def _pairs(a, b=None) -> list[float]:
    if b is None:
        return [float(np.linalg.norm(x - y)) for x, y in itertools.combinations(a, 2)]
    return [float(np.linalg.norm(x - y)) for x in a for y in b]


def _mean(xs) -> float | None:
    return round(float(np.mean(xs)), 4) if xs else None


def bench_identity(gen, root: Path, index, work: Path) -> None:
    """Two people of the library as characters; each generated in 4 shots, in a scene of
    another library shot (SDEdit) and from noise, with and without the face pass."""
    from generator.builtin import BuiltinGenerator
    from generator.cast import face_clusters
    from generator.identity import portraits_from_library
    from retrieval.analysis.faces import detect_faces

    groups = sorted((c.faces for c in face_clusters(index.shots)), key=len, reverse=True)[:2]
    if len(groups) < 2:
        emit(bench="identity", skipped="the library shows fewer than two different people")
        return
    cast, library_faces = [], {}
    for i, g in enumerate(groups):
        c = Character(name=f"P{i}", seed=100 + i,
                      descriptor=tuple(float(x) for x in np.mean([v for _, v in g], 0)))
        c = portraits_from_library(c, [s for s, _ in g], root, work / "portraits", limit=3)
        cast.append(c)
        library_faces[c.name] = []  # the person's faces in several frames of their shots
        for shot in {s.id: s for s, _ in g}.values():
            times = [shot.start + (shot.end - shot.start) * f for f in (0.2, 0.5, 0.8)]
            for f in ([read_still(root / shot.path)] if shot.is_still
                      else read_frames(root / shot.path, times)):
                near = [np.asarray(x.descriptor) for x in detect_faces(f) if x.descriptor
                        and np.linalg.norm(np.subtract(x.descriptor, c.descriptor)) < 0.6]
                library_faces[c.name] += near[:1]
    emit(bench="identity", mode="library", people=[sorted({s.path for s, _ in g}) for g in groups],
         faces=[len(library_faces[c.name]) for c in cast], portraits=[len(c.portraits) for c in cast],
         same_character_mean=_mean(_pairs(library_faces["P0"]) + _pairs(library_faces["P1"])),
         different_character_mean=_mean(_pairs(library_faces["P0"], library_faces["P1"])))
    scenes = [s for s in index.shots if not (s.features and s.features.faces)]
    rng = np.random.default_rng(1)
    actions = ["looks at the camera", "smiles", "talks on the phone", "turns around"]
    no_faces = BuiltinGenerator(gen.weights, replace(gen.settings, face_pass=False))
    for label, g in (("face_pass", gen), ("model_only", no_faces)):
        for mode in ("sdedit_other_scene", "no_init"):
            found: dict[str, list] = {c.name: [] for c in cast}
            frames = detected = 0
            times = []
            for c in cast:
                for k, act in enumerate(actions):
                    scene = scenes[int(rng.integers(len(scenes)))]
                    init = (str(init_frame(root, scene, work / "init"))
                            if mode != "no_init" else None)
                    req = GenerationRequest(f"id-{c.name}-{k}", f"{c.name} {act}.", act,
                                            (c.name,), 2.0, 1280, 720, "25", seed=k,
                                            init_image=init, cast=tuple(cast))
                    t = time.perf_counter()
                    clip = g.generate(req, cache_dir=work / "id", progress=False)
                    times.append(time.perf_counter() - t)
                    dur = probe(Path(clip.path)).duration
                    for f in read_frames(Path(clip.path), [dur * x for x in (0.1, 0.5, 0.9)]):
                        frames += 1
                        faces = detect_faces(f)
                        if faces and faces[0].descriptor:
                            detected += 1
                            found[c.name].append((k, np.asarray(faces[0].descriptor)))
            a, b = ([v for _, v in found[n]] for n in ("P0", "P1"))
            # same character: faces of different shots only (frames of one shot are near-copies)
            same = [float(np.linalg.norm(x - y)) for faces in found.values()
                    for (i, x), (j, y) in itertools.combinations(faces, 2) if i != j]
            emit(bench="identity", mode=f"{label}/{mode}", shots=len(actions) * len(cast),
                 frames_checked=frames, frames_with_a_face=detected,
                 same_character_generated=_mean(same),
                 generated_to_own_library_faces=_mean(
                     _pairs(a, library_faces["P0"]) + _pairs(b, library_faces["P1"])),
                 generated_to_other_library_faces=_mean(
                     _pairs(a, library_faces["P1"]) + _pairs(b, library_faces["P0"])),
                 different_character_generated=_mean(_pairs(a, b)),
                 seconds_per_shot_median=round(float(np.median(times)), 3), load_avg=load(),
                 shots_per_character=len(actions))


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
