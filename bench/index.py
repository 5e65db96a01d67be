"""Indexing speed against decoding speed: `python bench/index.py` (part of `make bench`).

A few minutes of 1080p H.264 in several files, made once from the demo's real clips (bikes,
Big Buck Bunny, carphone: cut together in varied orders, some mirrored or sped up, upscaled to
1920x1080) and kept in out/bench/index-1080p/. Each run, in one process after the other:

- ffmpeg decodes every file to nothing (``-f null``), the reference for "the speed of decoding";
- a fresh Python process indexes the library cold (its index folder removed first, so imports,
  model loading, decoding, shot detection, features and embedding are all counted);
- ffmpeg decodes the files again, so a change of the machine's load during the run shows.

Before that, the classifier's one-time ONNX export (retrieval.embed.classifier) is made if the model
cache lacks it, and its cost printed: the timed runs find it, as every run after the first does.

Then (unless ``--no-switch``) the same library is indexed with other embedders, each in a
fresh process, as `montage index LIB --embedder X` does after `montage models pull X`: the index
keeps its keyframes, so another embedder re-embeds them without decoding a video
(retrieval/index/keyframes.py), and the first embedder's vectors are kept (switching back is
free). The embedders: proxy-v3 (a real offline embedder) and open_clip's ViT-B-32 with random
weights (the architecture and so the compute of the clip-vit-b32 catalogue model, whose
weights cannot be downloaded here; its 1000 label prompts are encoded once, untimed, as a
pulled model's are cached after its first use), then proxy-v4 again.

Prints JSON lines: each measurement, the load average before and after, and the ratio of index
time to the mean decode time (the target is at most 2); also both as CPU seconds (the process
and its children), which a busy shared machine disturbs less than wall time. ``--repeat N``
indexes N times, ``--workers 1 2`` once per worker count.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from montage.cli.demo import fetch_demo_library  # noqa: E402
from retrieval.media.ffmpeg import ffmpeg_exe  # noqa: E402

OUT = ROOT / "out" / "bench" / "index-1080p"
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone.mp4")
FILES = 5  # each about 38 s: 3 minutes in all
# per segment: (clip, speed, mirrored); the files take these in rotated orders, so the same
# picture never sits at the same place and every join between two clips is a hard cut
SEGMENTS = ((0, 1.0, False), (1, 1.0, False), (2, 1.25, True), (0, 0.8, True), (1, 1.25, True),
            (2, 1.0, False))


def make_library(folder: Path = OUT) -> Path:
    """The 1080p library (made once; a `.done` stamp marks it complete)."""
    if (folder / ".done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    demo = fetch_demo_library()
    for n in range(FILES):
        order = SEGMENTS[n % len(SEGMENTS):] + SEGMENTS[:n % len(SEGMENTS)]
        inputs, parts = [], []
        for k, (clip, speed, mirrored) in enumerate(order):
            inputs += ["-i", str(demo / CLIPS[clip])]
            chain = f"[{k}:v]setpts=PTS/{speed}," + ("hflip," if mirrored else "")
            chain += ("scale=1920:1080:force_original_aspect_ratio=increase:flags=bicubic,"
                      "crop=1920:1080,setsar=1,fps=25,format=yuv420p")
            parts.append(chain + f"[v{k}]")
        graph = ";".join(parts) + ";" + "".join(f"[v{k}]" for k in range(len(order)))
        graph += f"concat=n={len(order)}:v=1:a=0[v]"
        target = folder / f"take_{n:02d}.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *inputs, "-filter_complex", graph,
                        "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                        "-g", "50", "-pix_fmt", "yuv420p", "-an", str(target)], check=True)
    (folder / ".done").write_text("")
    return folder


def videos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.mp4"))


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and their children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def decode_seconds(files: list[Path]) -> tuple[float, float]:
    """Wall and CPU time for ffmpeg to decode every video frame of ``files`` (threads: its
    default)."""
    t, cpu = time.perf_counter(), children_cpu()
    for f in files:
        subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(f), "-map", "0:v:0",
                        "-f", "null", "-"], check=True)
    return time.perf_counter() - t, children_cpu() - cpu


INDEX_CHILD = """
import json, sys, time
t = time.perf_counter()
from pathlib import Path
from retrieval.index.build import build_index
workers = None if sys.argv[2] == "default" else int(sys.argv[2])
spec = sys.argv[3] if len(sys.argv) > 3 else "proxy"
if spec.startswith("local-dir:"):
    from retrieval.embed.clip import ClipEmbedder
    spec = ClipEmbedder.from_installed("vit-b32-random-weights", Path(spec[10:]))
r = build_index(Path(sys.argv[1]), spec, progress=False, workers=workers)
print(json.dumps({"shots": r.shots, "files": r.files_indexed, "footage_s": r.footage_seconds,
                  "inside_s": round(time.perf_counter() - t, 2)}))
"""


def index_cold(folder: Path, workers: str = "default",
               spec: str = "proxy") -> tuple[float, float, dict]:
    """Wall and CPU time of a fresh process (and its workers) indexing ``folder`` from nothing,
    and what it reported."""
    shutil.rmtree(folder / ".montage", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([sys.executable, "-c", INDEX_CHILD, str(folder), workers, spec],
                          check=True,
                          env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t
    return seconds, children_cpu() - cpu, json.loads(done.stdout.strip().splitlines()[-1])


SWITCH_CHILD = """
import json, sys, time
from pathlib import Path
t = time.perf_counter()
from retrieval.index.build import build_index
spec = sys.argv[2]
if spec.startswith("local-dir:"):
    from retrieval.embed.clip import ClipEmbedder
    spec = ClipEmbedder.from_installed("vit-b32-random-weights", Path(spec[10:]))
    if sys.argv[3] == "warm":  # the label prompts, once per model (cached), as after a pull
        spec.label_vectors()
        print(json.dumps({"warm_s": round(time.perf_counter() - t, 2)}))
        sys.exit(0)
r = build_index(Path(sys.argv[1]), spec, progress=False)
print(json.dumps({"embedder": r.embedder, "files": r.files_indexed, "reused": r.files_reused,
                  "reembedded": r.files_reembedded, "parked": r.parked, "shots": r.shots,
                  "inside_s": round(time.perf_counter() - t, 2)}))
"""
B32 = OUT.parent / "clip-vit-b32-random"  # open_clip's ViT-B-32, random weights (made once)


def random_b32(folder: Path = B32) -> Path:
    """A local-dir open_clip model of ViT-B-32's config with random weights (its compute is the
    pulled clip-vit-b32's; its vectors mean nothing)."""
    if (folder / "open_clip_model.safetensors").is_file():
        return folder
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import json, sys, open_clip, torch; from pathlib import Path; "
            "from safetensors.torch import save_file; f = Path(sys.argv[1]); "
            "f.mkdir(parents=True, exist_ok=True); "
            "(f / 'open_clip_config.json').write_text(json.dumps({'model_cfg': "
            "open_clip.get_model_config('ViT-B-32')})); torch.manual_seed(0); "
            "m = open_clip.create_model('ViT-B-32'); "
            "save_file({k: v.contiguous() for k, v in m.state_dict().items()}, "
            "str(f / 'open_clip_model.safetensors'))")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=env,
                   capture_output=True)
    return folder


def switch(folder: Path, spec: str, mode: str = "time") -> tuple[float, float, dict]:
    """Wall and CPU time of a fresh process indexing ``folder`` (already indexed) with
    ``spec``, and what it reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([sys.executable, "-c", SWITCH_CHILD, str(folder), spec, mode],
                          check=True, env=env, capture_output=True, text=True)
    return (time.perf_counter() - t, children_cpu() - cpu,
            json.loads(done.stdout.strip().splitlines()[-1]))


EXPORT_CHILD = """
import json, time
t = time.perf_counter()
from retrieval.embed.classifier import export, onnx_path
from retrieval.embed.base import default_cache_dir
path = onnx_path(default_cache_dir())
cached = path.is_file()
seconds = 0.0 if cached else export(path)
print(json.dumps({"cached": cached, "export_s": round(seconds, 2),
                  "with_torch_import_s": 0.0 if cached else round(time.perf_counter() - t, 2)}))
"""


def classifier_export() -> dict:
    """Make the classifier's ONNX export once if the cache lacks it; what it cost."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", EXPORT_CHILD], check=True, env=env,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def emit(**data) -> None:
    print(json.dumps(data), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="cold index runs (default 1)")
    parser.add_argument("--workers", default=["default"], nargs="+",
                        help="analysis processes for each run: default, or numbers to compare")
    parser.add_argument("--no-switch", action="store_true",
                        help="skip indexing again with other embedders")
    args = parser.parse_args()
    emit(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version())
    t = time.perf_counter()
    folder = make_library()
    files = videos(folder)
    emit(stage="library ready", files=len(files), seconds=round(time.perf_counter() - t, 1))
    emit(stage="classifier export (once per model cache)", **classifier_export())
    load_before = os.getloadavg()
    decode_a, decode_cpu_a = decode_seconds(files)
    emit(stage="ffmpeg decode", seconds=round(decode_a, 2), cpu_s=round(decode_cpu_a, 2))
    runs = []
    for _ in range(max(1, args.repeat)):
        for workers in args.workers:
            seconds, cpu, report = index_cold(folder, workers)
            runs.append((seconds, cpu))
            emit(stage="index cold (fresh process)", workers=workers, seconds=round(seconds, 2),
                 cpu_s=round(cpu, 2), **report)
    switches = []
    if not args.no_switch:
        keyframes = folder / ".montage" / "keyframes"
        emit(stage="keyframes kept with the index", files=len(list(keyframes.glob("*.kf"))),
             mb=round(sum(p.stat().st_size for p in keyframes.glob("*.kf")) / 1e6, 1),
             footage_mb=round(sum(f.stat().st_size for f in files) / 1e6, 1))
        b32 = f"local-dir:{random_b32()}"
        emit(stage="CLIP ViT-B-32 label prompts, once per model (untimed below)",
             **switch(folder, b32, "warm")[2])
        for spec, what in (("proxy-v3", "re-embed with proxy-v3"),
                           (b32, "re-embed with CLIP ViT-B-32 (random weights)"),
                           ("proxy", "back to proxy-v4 (its vectors were kept)")):
            seconds, cpu, said = switch(folder, spec)
            switches.append((what, seconds, cpu, said))
            emit(stage=what, seconds=round(seconds, 2), cpu_s=round(cpu, 2), **said)
        # the fair reference for CLIP's re-embed: a first index made with CLIP itself
        seconds, cpu, said = index_cold(folder, spec=b32)
        switches.append(("first index with CLIP ViT-B-32 (random weights)", seconds, cpu, said))
        emit(stage="index cold with CLIP ViT-B-32 (random weights)", seconds=round(seconds, 2),
             cpu_s=round(cpu, 2), **said)
        index_cold(folder)  # leave the library indexed as the default would
    decode_b, decode_cpu_b = decode_seconds(files)
    emit(stage="ffmpeg decode again", seconds=round(decode_b, 2), cpu_s=round(decode_cpu_b, 2))
    decode, decode_cpu = (decode_a + decode_b) / 2, (decode_cpu_a + decode_cpu_b) / 2
    footage = report["footage_s"]
    best, best_cpu = min(runs)
    emit(summary=True, footage_s=footage, decode_s=round(decode, 2),
         index_s=round(best, 2), ratio=round(best / decode, 2),
         decode_cpu_s=round(decode_cpu, 2), index_cpu_s=round(best_cpu, 2),
         cpu_ratio=round(best_cpu / decode_cpu, 2),
         index_x_realtime=round(footage / best, 1),
         decode_x_realtime=round(footage / decode, 1),
         switch={what: {"seconds": round(sec, 2), "cpu_s": round(c, 2),
                        "of_first_index": round(sec / best, 3),
                        "of_decode": round(sec / decode, 3),
                        "reembedded": rep.get("reembedded"), "reused": rep.get("reused")}
                 for what, sec, c, rep in switches},
         load_before=[round(x, 2) for x in load_before],
         load_after=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
