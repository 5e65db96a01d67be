"""Generated shots in real films: what wins, how fills measure against footage, what they cost.

`python bench/generator.py [--films demo,eval,absent] [--tries N] [--before DIR] [--sheets DIR]`
prints JSON lines:

- ``film`` (one per film): shots; footage, title cards, blur fills (the builtin diffusion model)
  and stand-in fills (generator.standin) in the cut; the mean measured score of the fills the
  film shows and of the footage it shows; over the shots a fill was made for, the mean score of
  their best fill and of their best footage, and how often the fill measured higher. Every fill
  is scored as footage is (retrieval.score_outside), so these are on one scale. For ``absent``,
  what the sentences whose footage was removed became.
- ``before`` (with --before DIR): the same films cut by the montage checked out in DIR (its own
  ``.venv/bin/montage``, e.g. the main branch before fills were measured), its fills measured
  by this code.
- ``cost``: CPU seconds per fill at 1280x720 (this process and its ffmpeg children, cache off)
  for each backend over the demo's fills, and the CPU seconds measuring a fill costs.

Films: ``demo`` (the demo script, library and cast, --generator standin,builtin as `montage
demo` runs it); ``eval`` (a story of one sentence per item of the test half of assets/eval: the
item's first query, over the test half's library, neutral file names); ``absent`` (that story
over the library with a seeded third of its items' files removed: those sentences have no
footage). The card threshold is the embedder's own throughout. Numbers depend on the machine's
load; the load average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import evalset  # noqa: E402

from montage.cli.demo import DEMO, fetch_demo_library  # noqa: E402
from montage.film import read_timeline  # noqa: E402
from montage.pipeline.recut import MakeOptions, Recutter  # noqa: E402
from retrieval import build_index, measure_outside, open_index, score_outside  # noqa: E402
from retrieval.types import CandidateSet  # noqa: E402

MEDIA_CACHE = Path.home() / ".cache" / "montage" / "eval-media"
ABSENT_SEED = 7


def emit(**data) -> None:
    print(json.dumps(data), flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu() -> float:
    """CPU seconds of this process and of its finished children (ffmpeg)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


# -- the films --------------------------------------------------------------------------------
def eval_story(work: Path) -> tuple[Path, Path, dict[str, str]]:
    """The test half's library and a story of one sentence per item (its first query); the
    item id of each sentence."""
    items = evalset.rows(evalset.EVAL / "items.csv")
    queries = evalset.rows(evalset.EVAL / "queries.csv")
    _, test = evalset.split(items)
    root = work / "eval-library"
    evalset.fetch(test, root, MEDIA_CACHE)
    lines, owner = [], {}
    for item in sorted(test, key=lambda i: i["id"]):
        q = next((q["query"] for q in queries
                  if item["id"] in {t.partition("@")[0] for t in q["relevant"].split()}), None)
        if q:
            sentence = q[0].upper() + q[1:].rstrip(".") + "."
            lines.append(sentence)
            owner[sentence] = item["id"]
    script = work / "eval-story.txt"
    script.write_text(" ".join(lines) + "\n", encoding="utf-8")
    return script, root, owner


def absent_library(root: Path, owner: dict[str, str], work: Path) -> tuple[Path, set[str]]:
    """A copy of the eval library without a seeded third of its items' files."""
    items = {i["id"]: i for i in evalset.rows(evalset.EVAL / "items.csv")}
    ids = sorted(set(owner.values()))
    gone = set(random.Random(ABSENT_SEED).sample(ids, len(ids) // 3))
    dest = work / "absent-library"
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(".montage"))
    for item in gone:
        (dest / items[item]["name"]).unlink(missing_ok=True)
    return dest, gone


def cut(name: str, script: Path, library: Path, work: Path, options: MakeOptions):
    project = work / f"{name}-project"
    t, c = time.perf_counter(), cpu()
    res = Recutter(library, project, options).cut(script, work / f"{name}.mp4")
    return project, round(time.perf_counter() - t, 1), round(cpu() - c, 1), res


def summary(project: Path, index, absent: set[str] | None = None,
            owner: dict[str, str] | None = None, measure_chosen: bool = False) -> dict:
    """What the film shows, and how its fills measured against its footage."""
    edl = read_timeline(project / "edit.otio")
    cands = {c.shot_id: c for c in CandidateSet.from_json(
        (project / "candidates.json").read_text(encoding="utf-8")).shots}
    kinds = {"footage": 0, "card": 0, "blur fill": 0, "stand-in fill": 0}
    chosen_fill, chosen_footage, best_fill, best_footage = [], [], [], []
    fate: dict[str, int] = {}
    for d in edl.decisions:
        c = cands[d.shot_id]
        by_id = {h.shot.id: h for h in c.hits}
        backend = dict(d.provenance).get("backend", "")
        if d.source == "generated":
            kind = "stand-in fill" if backend == "standin" else "blur fill"
            if measure_chosen:  # a film cut by other code: its fill is measured here
                (score,) = score_outside(index, c.query, [measure_outside(index, Path(d.media))])
            else:
                score = by_id[d.library_shot].score
            chosen_fill.append(score)
        elif d.source == "placeholder":
            kind = "card"
        else:
            kind = "footage"
            chosen_footage.append(by_id[d.library_shot].score)
        kinds[kind] += 1
        fills = [h.score for h in c.hits if h.shot.id.startswith("generated:")]
        footage = [h.score for h in c.hits if not h.shot.id.startswith("generated:")]
        if fills and not measure_chosen:
            best_fill.append(max(fills))
            best_footage.append(max(footage, default=0.0))
        if absent is not None and owner is not None and owner.get(d.text) in absent:
            fate[kind] = fate.get(kind, 0) + 1
    mean = lambda xs: round(float(np.mean(xs)), 4) if xs else None  # noqa: E731
    out = {"shots": len(edl.decisions), **kinds,
           "chosen_fill_mean_score": mean(chosen_fill),
           "chosen_footage_mean_score": mean(chosen_footage)}
    if best_fill:
        out.update(shots_with_fills=len(best_fill), best_fill_mean=mean(best_fill),
                   best_footage_mean=mean(best_footage),
                   fill_above_footage=int(sum(f > g for f, g in zip(best_fill, best_footage))))
    if absent is not None:
        out["absent_sentences"] = fate
    return out


def before(dir_: Path, name: str, script: Path, library: Path, cast: Path | None,
           work: Path) -> tuple[Path, float, float]:
    """The film cut by the montage in ``dir_`` (its builtin generator, as it shipped), the
    wall and CPU seconds it took."""
    exe = dir_ / ".venv" / "bin" / "montage"
    project = work / f"before-{name}-project"
    cmd = [str(exe), "make", str(script), "--library", str(library), "--out",
           str(work / f"before-{name}.mp4"), "--project", str(project), "--generator", "builtin",
           "--quiet"] + (["--cast", str(cast)] if cast else [])
    t, c = time.perf_counter(), cpu()
    subprocess.run(cmd, cwd=dir_, check=True, stdout=subprocess.DEVNULL)
    return project, round(time.perf_counter() - t, 1), round(cpu() - c, 1)


# -- the cost of a fill -----------------------------------------------------------------------
def cost(project: Path, library: Path, work: Path) -> None:
    """CPU seconds per fill at 1280x720 for each backend, over the demo shots that got fills."""
    from generator import GenerationRequest, load_cast, resolve_identity
    from generator.builtin import BuiltinGenerator
    from generator.candidates import measure
    from generator.conditioning import hit_frame
    from generator.standin import StandinGenerator
    from planner.plan import load_script

    plan = load_script(DEMO / "script.txt")
    cands = {c.shot_id: c for c in CandidateSet.from_json(
        (project / "candidates.json").read_text(encoding="utf-8")).shots}
    cast = tuple(resolve_identity(c) for c in load_cast(DEMO / "cast.toml", ["Maya"]))
    index = open_index(library)
    shots = [s for s in plan.shots if any(h.shot.id.startswith("generated:")
                                          for h in cands[s.id].hits)]
    for gen in (StandinGenerator(), BuiltinGenerator()):
        times, walls, measures, lengths = [], [], [], []
        for k, shot in enumerate(shots):
            if shot.characters and not gen.draws_faces:
                continue
            hits = [h for h in cands[shot.id].hits if not h.shot.id.startswith("generated:")]
            init = str(hit_frame(library, hits[0], work / "frames")) if hits else None
            req = GenerationRequest(shot.id, shot.text, shot.query, shot.characters,
                                    shot.duration, 1280, 720, "25", seed=k, init_image=init,
                                    cast=cast)
            c, t = cpu(), time.perf_counter()
            clip = gen.generate(req, cache_dir=work / f"cost-{gen.backend}", progress=False)
            times.append(cpu() - c)
            walls.append(time.perf_counter() - t)
            lengths.append(shot.duration)
            c = cpu()
            measure(clip, index)
            measures.append(cpu() - c)
        emit(bench="cost", backend=gen.backend, fills=len(times), film_size="1280x720",
             shot_seconds_mean=round(float(np.mean(lengths)), 2),
             cpu_s_per_fill_mean=round(float(np.mean(times)), 3),
             cpu_s_per_fill_max=round(float(np.max(times)), 3),
             wall_s_per_fill_mean=round(float(np.mean(walls)), 3),
             measure_cpu_s_mean=round(float(np.mean(measures)), 3), load_avg=load(),
             note="the first builtin fill includes loading its weights" if gen.backend == "builtin"
             else "the first stand-in includes loading the segmentation model")


def _small(image, path: Path, width: int) -> None:
    """A small PNG for the docs: scaled to ``width``, 128 colours (about 100 KB a sheet)."""
    from PIL import Image

    image = image.convert("RGB").resize((width, round(image.height * width / image.width)),
                                        Image.Resampling.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT,
                   dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    emit(bench="sheet", path=str(path), bytes=path.stat().st_size)


def sheets(pairs: list[tuple[str, Path]], out: Path, width: int = 720) -> None:
    """Small copies of contact sheets for the docs."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for name, sheet in pairs:
        if sheet.is_file():
            _small(Image.open(sheet), out / f"{name}.png", width)


def fill_sheet(project: Path, out: Path, width: int = 720) -> None:
    """The best fill made for each shot that got fills (the one the film shows, or the one
    that lost to footage or a card), its middle frame, measured score and fate."""
    from PIL import Image, ImageDraw, ImageFont

    from retrieval.media import probe, read_frames

    edl = {d.shot_id: d for d in read_timeline(project / "edit.otio").decisions}
    cands = CandidateSet.from_json((project / "candidates.json").read_text(encoding="utf-8"))
    tiles = []
    for c in cands.shots:
        fill = next((h for h in c.hits if h.shot.id.startswith("generated:")), None)
        if fill is None:
            continue
        d = edl[c.shot_id]
        fate = ("in the film" if d.library_shot == fill.shot.id else
                "lost to a card" if d.source == "placeholder" else "lost to footage")
        path = Path(fill.shot.path)
        frame = read_frames(path, [probe(path).duration / 2])[0]
        tiles.append((frame, f"{d.text[:46]} | {fill.shot.labels[0]} {fill.score:.2f}, {fate}"))
    if not tiles:
        return
    tw, th, cap = 480, 270, 22
    sheet = Image.new("RGB", (tw * 2, (th + cap) * ((len(tiles) + 1) // 2)), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=13)
    for n, (frame, text) in enumerate(tiles):
        x, y = (n % 2) * tw, (n // 2) * (th + cap)
        sheet.paste(Image.fromarray(frame).resize((tw, th)), (x, y))
        draw.text((x + 4, y + th + 3), text, fill="black", font=font)
    out.mkdir(parents=True, exist_ok=True)
    _small(sheet, out / "demo-fills.png", width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", default="demo,eval,absent")
    ap.add_argument("--tries", type=int, default=None, help="fills per generator per shot")
    ap.add_argument("--generator", default="standin,builtin")
    ap.add_argument("--before", type=Path, default=None,
                    help="a checkout of an earlier montage (with its .venv) to compare with")
    ap.add_argument("--sheets", type=Path, default=None,
                    help="write small before/after contact sheets of the demo here")
    ap.add_argument("--no-cost", action="store_true")
    ap.add_argument("--work", type=Path, default=None, help="keep the films here")
    args = ap.parse_args()
    films = args.films.split(",")
    emit(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version(),
         load_avg=load(), generator=args.generator)
    options = MakeOptions(generator=args.generator, progress=False)
    if args.tries:
        options = replace(options, fill_tries=args.tries)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = []
        if "demo" in films:
            lib = work / "demo-library"
            if not lib.is_dir():
                shutil.copytree(fetch_demo_library(), lib)
            runs.append(("demo", DEMO / "script.txt", lib, DEMO / "cast.toml", None, None))
        if "eval" in films or "absent" in films:
            script, root, owner = eval_story(work)
            if "eval" in films:
                runs.append(("eval", script, root, None, None, None))
            if "absent" in films:
                gone_lib, gone = absent_library(root, owner, work)
                runs.append(("absent", script, gone_lib, None, gone, owner))
        for name, script, lib, cast, gone, owner in runs:
            build_index(lib, "proxy", progress=False)
            index = open_index(lib)
            project, wall, cpu_s, res = cut(name, script, lib, work,
                                            replace(options, cast=cast))
            emit(bench="film", film=name, **summary(project, index, gone, owner), wall_s=wall,
                 cpu_s=cpu_s, fill_tries=options.fill_tries, load_avg=load())
            if args.before:
                old, wall, cpu_s = before(args.before, name, script, lib, cast, work)
                emit(bench="before", film=name, code=str(args.before),
                     **summary(old, index, gone, owner, measure_chosen=True), wall_s=wall,
                     cpu_s=cpu_s, load_avg=load())
            if name == "demo":
                if args.sheets:
                    pairs = [("demo-after", project / "contact.png")]
                    if args.before:
                        pairs.insert(0, ("demo-before", work / "before-demo-project" / "contact.png"))
                    sheets(pairs, args.sheets)
                    fill_sheet(project, args.sheets)
                if not args.no_cost:
                    cost(project, lib, work)


if __name__ == "__main__":
    main()
