"""montage studio speed: `python bench/studio.py` (part of `make bench`).

0. Save to play in Chromium (`--save-to-play`; `--compare DIR` runs it for the checkout in
   DIR, e.g. /work/main, and for this one, alternately in fresh processes, each figure with the
   load average): the demo project (14 shots, 1280x720, the builtin generator and its cast) and
   the 75-sentence project below (1280x720), opened in the real studio server and Debian's
   Chromium (Playwright). For one-sentence edits made in the page, the time from the click on
   *Save and recut* to the new film's ``playing`` event, measured in the page
   (``performance.now()``), split into the server's recut (by stage) and the rest (polling, the
   page's reload, the player loading and starting the new film). A page that does not play a
   new film by itself is told to at once (as a user pressing play without delay would).

1. Save to playable: the 75-sentence project of bench/recut.py, served by the real studio
   server (models and index loaded). For single-sentence edits made through the page's API, the
   time from the POST of the new script to the new film being served (status done, then the
   first bytes of the new film's URL). Reference in the same run: the same kind of edit through
   a fresh `montage make` process (what a user of the command line waits).
2. Page interactive: a 500-shot project opened in Debian's chromium (Playwright); the time from
   navigation to the page's first render of every shot (``body[data-ready]``, measured by the
   page with ``performance.now()``), and to the first thumbnail shown. Skipped without chromium.
Prints JSON lines.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "--code" in sys.argv:  # measure another checkout's montage (the baseline of --compare)
    CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
else:
    CODE = ROOT
sys.path.insert(0, str(CODE))

import httpx  # noqa: E402

from montage.pipeline.recut import MakeOptions  # noqa: E402
from montage.studio import Studio, start_in_thread  # noqa: E402

def _recut_bench():
    """bench/recut.py's library and script (a module beside this one, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_recut", ROOT / "bench" / "recut.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_recut = _recut_bench()
OUT, paragraphs_of, script_sentences = _recut.OUT, _recut.paragraphs_of, _recut.script_sentences
synth_library, write = _recut.synth_library, _recut.write


TOKEN = "bench-token-0123456789abcdef"


def emit(**data) -> None:
    print(json.dumps(data), flush=True)


def save_to_playable(client: httpx.Client, studio: Studio, text: str) -> tuple[float, dict]:
    t = time.perf_counter()
    job = client.post("/api/script", json={"text": text},
                      headers={"X-Montage-Token": TOKEN}).json()["job"]
    while True:
        status = client.get("/api/status").json()
        if status["done"] >= job and status["state"] != "working":
            break
        time.sleep(0.01)
    if status["error"]:
        raise SystemExit(f"the recut failed: {status['error']}")
    with client.stream("GET", f"/media/film/{status['cut']}.mp4", headers={"Range": "bytes=0-65535"}) as r:
        next(r.iter_bytes())
    return time.perf_counter() - t, status


def recut_bench(library: Path) -> None:
    work = OUT / "studio"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script, out, project = work / "story.txt", work / "film.mp4", work / "project"
    paragraphs = paragraphs_of(script_sentences())
    write(script, paragraphs)
    studio = Studio(script, library, project, out, MakeOptions(progress=False, contact_sheet=False))
    t = time.perf_counter()
    studio.wait(studio.start(), timeout=900)
    emit(stage="studio first cut", seconds=round(time.perf_counter() - t, 2))
    served = start_in_thread(studio, TOKEN)
    client = httpx.Client(base_url=served.url, cookies={"montage_studio": TOKEN}, timeout=120)

    def text_of(ps):
        return "\n\n".join(" ".join(p) for p in ps) + "\n"

    deleted = paragraphs[:12] + [paragraphs[12][1:]] + paragraphs[13:]
    edits = [
        ("delete one sentence (no new clip)", deleted),
        ("put it back (its clip is in the cache)", paragraphs),
        ("modify one sentence (a new clip to encode)",
         paragraphs[:8] + [[paragraphs[8][0].replace(".", " once more.")] + paragraphs[8][1:]]
         + paragraphs[9:]),
    ]
    try:
        for name, ps in edits:
            seconds, status = save_to_playable(client, studio, text_of(ps))
            encoded = next((line for line in status["log"] if "joining" in line), "")
            emit(stage=f"studio: {name}", save_to_playable_s=round(seconds, 3), cut=status["cut"],
                 render=encoded)
    finally:
        client.close()
        served.stop()
    # the reference: the command line, a fresh process per edit (models load each time)
    ps = paragraphs[:12] + [paragraphs[12][1:]] + paragraphs[13:]
    write(script, ps)
    t = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("montage")), "make", str(script), "--library",
                    str(library), "--out", str(out), "--project", str(project), "--quiet"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    emit(stage="reference: montage make in a fresh process, delete one sentence",
         seconds=round(time.perf_counter() - t, 2))


def page_bench(library: Path, shots: int = 500) -> None:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        emit(stage="page interactive", skipped="needs Debian's chromium and Playwright")
        return
    work = OUT / f"studio-{shots}"
    script, out, project = work / "story.txt", work / "film.mp4", work / "project"
    if not (project / "state.json").is_file():
        work.mkdir(parents=True, exist_ok=True)
        write(script, paragraphs_of(script_sentences(shots)))
    studio = Studio(script, library, project, out,
                    MakeOptions(progress=False, contact_sheet=False, width=320, height=180))
    job = studio.start()
    if job is not None:
        t = time.perf_counter()
        studio.wait(job, timeout=1800)
        emit(stage=f"{shots}-shot project: first cut", seconds=round(time.perf_counter() - t, 1))
    served = start_in_thread(studio, TOKEN)
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=args, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{served.url}/?token={TOKEN}")  # sets the cookie (not timed)
            for run in range(3):
                page.reload()
                page.wait_for_selector("body[data-ready='1']", timeout=60000)
                ready = float(page.get_attribute("body", "data-ready-ms"))
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#strip img')].some(i => i.complete && i.naturalWidth > 0)",
                    timeout=60000)
                first_thumb = page.evaluate("() => performance.now()")
                emit(stage=f"page interactive, {shots} shots", run=run + 1,
                     ready_ms=round(ready), first_thumbnail_ms=round(first_thumb),
                     strip_blocks=page.locator("#strip .clip").count(),
                     thumbnails_loaded=page.evaluate(
                         "() => [...document.querySelectorAll('#strip img')].filter(i => i.complete && i.naturalWidth > 0).length"))
            browser.close()
    finally:
        served.stop()


# -- save to play, in Chromium ---------------------------------------------------------------------
WORDS = ["old", "soft", "small", "warm", "long", "worn", "low", "wide", "dark", "green"]


def demo_edits(word: str) -> list[tuple[str, str, str]]:
    """(what, old sentence, new sentence); ``word`` differs from run to run, so the edited
    shot is new to the render cache each time (its clip is encoded)."""
    return [
        ("demo: modify one sentence (its clip encoded)", "Her cat yawns lazily on the sofa.",
         f"Her cat yawns lazily on the {word} sofa."),
        ("demo: put it back (its clip in the cache)", f"Her cat yawns lazily on the {word} sofa.",
         "Her cat yawns lazily on the sofa."),
        ("demo: a sentence whose footage another shot holds (generated, 1280x720)",
         "A rocket rises into the sky.", f"A man with a camera stands in a {word} field."),
        ("demo: put that back", f"A man with a camera stands in a {word} field.",
         "A rocket rises into the sky."),
    ]


def next_word(work: Path) -> str:
    """A word this project has not been edited with (counted in a file beside it)."""
    counter = work / "bench-runs"
    n = int(counter.read_text()) if counter.is_file() else 0
    counter.write_text(str(n + 1))
    return WORDS[n % len(WORDS)] + ("" if n < len(WORDS) else f"{n}")
LISTEN = """() => {
  const player = document.getElementById('player');
  window.__bench = { src: player.getAttribute('src'), t0: null, t1: null, started: null };
  document.getElementById('save').addEventListener('click', () => { __bench.t0 = performance.now(); }, true);
  player.addEventListener('loadeddata', () => {
    if (player.getAttribute('src') !== __bench.src && __bench.t0 !== null && player.paused)
      player.play().catch(() => {});  // a page that does not play a new film: a user would
  }, { once: false });
  player.addEventListener('playing', () => {
    if (player.getAttribute('src') !== __bench.src && __bench.t0 !== null && __bench.t1 === null)
      __bench.t1 = performance.now();
  });
}"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def demo_project(work: Path):
    """The demo, made once per checkout: its script copied beside the project (so the studio
    writes the copy), the builtin generator and its cast, 1280x720."""
    from montage.cli.demo import DEMO, fetch_demo_library

    script, out, project = work / "story.txt", work / "film.mp4", work / "project"
    options = MakeOptions(progress=False, generator="builtin", cast=DEMO / "cast.toml")
    if not (project / "state.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        script.write_text((DEMO / "script.txt").read_text(encoding="utf-8"), encoding="utf-8")
        from montage.pipeline import Recutter

        Recutter(fetch_demo_library(), project, options).cut(script, out)
    return script, fetch_demo_library(), project, out, options


def long_project(work: Path, library: Path):
    """The 75-sentence project of bench/recut.py at 1280x720."""
    script, out, project = work / "story.txt", work / "film.mp4", work / "project"
    options = MakeOptions(progress=False)
    if not (project / "state.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        write(script, paragraphs_of(script_sentences()))
        from montage.pipeline import Recutter

        Recutter(library, project, options).cut(script, out)
    return script, library, project, out, options


def play_edits(name: str, made, edits) -> None:
    """Each edit typed into the page and saved: save click to the new film playing."""
    from playwright.sync_api import sync_playwright

    script, library, project, out, options = made
    studio = Studio(script, library, project, out, options)
    if (job := studio.start()) is not None:
        studio.wait(job, timeout=900)
    timings: list[dict] = []
    cut = studio.recutter.cut

    def timed(*args, **kwargs):  # the server's side of each save, stage by stage
        t = time.perf_counter()
        result = cut(*args, **kwargs)
        timings.append({"recut_s": round(time.perf_counter() - t, 3),
                        "stages_s": {k: round(v, 3) for k, v in result.timings.items()},
                        "encoded": result.encoded, "changes": result.changes})
        return result
    studio.recutter.cut = timed
    served = start_in_thread(studio, TOKEN)
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=args,
                                        headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{served.url}/?token={TOKEN}")
            page.wait_for_selector("body[data-ready='1']", timeout=60000)
            for what, old, new in edits:
                shot = next(s for s in studio.snapshot()["shots"] if s["text"] == old)
                page.wait_for_function("() => document.getElementById('player').readyState >= 2",
                                       timeout=60000)
                page.click(f"#editor .shot[data-id='{shot['id']}']")
                page.evaluate("""([id, text]) => {
                    const span = document.querySelector(`#editor .shot[data-id="${id}"]`);
                    span.firstChild.textContent = text;
                    span.dispatchEvent(new Event('input', { bubbles: true }));
                }""", [shot["id"], new])
                page.evaluate(LISTEN)
                before, timings[:] = load(), []
                page.click("#save")
                page.wait_for_function("() => window.__bench.t1 !== null", timeout=600000)
                t0, t1 = page.evaluate("[window.__bench.t0, window.__bench.t1]")
                total = (t1 - t0) / 1000
                server = timings[0] if timings else {}
                emit(stage=f"save to play: {what}", code=name, save_to_play_s=round(total, 3),
                     recut_s=server.get("recut_s"),
                     page_and_player_s=round(total - server.get("recut_s", 0.0), 3),
                     stages_s=server.get("stages_s"), encoded=server.get("encoded"),
                     changes=server.get("changes"), load_before=before, load_after=load())
                page.wait_for_function("() => !document.body.dataset.busy", timeout=60000)
                t = time.perf_counter()  # then, as a writer reads the new cut, the AAC film
                while studio.status().get("finishing"):
                    time.sleep(0.05)
                emit(stage=f"  then the finished film (in the background): {what}", code=name,
                     seconds_after_playing=round(time.perf_counter() - t, 2), load=load())
            browser.close()
    finally:
        served.stop()
        studio.close()


def save_to_play(name: str) -> None:
    library = synth_library(OUT / "library")
    label = "".join(c if c.isalnum() else "-" for c in name)
    demo = demo_project(OUT / f"play-demo-{label}")
    play_edits(name, demo, demo_edits(next_word(demo[2].parent)))
    made = long_project(OUT / f"play-75-{label}", library)
    sentence = paragraphs_of(script_sentences())[8][0]
    edited = sentence.replace(".", f" at the {next_word(made[2].parent)} hour.")
    play_edits(name, made, [
        ("75 sentences: modify one sentence (its clip encoded)", sentence, edited),
        ("75 sentences: put it back (its clip in the cache)", edited, sentence)])


def compare(baseline: Path, runs: int) -> None:
    """``--save-to-play`` for ``baseline`` and for this checkout, alternately, in fresh processes."""
    for run in range(runs):
        for code in (baseline, ROOT):
            python = code / ".venv" / "bin" / "python"
            emit(run=run + 1, code=str(code), load=load())
            subprocess.run([str(python if python.exists() else sys.executable), __file__,
                            "--save-to-play", "--code", str(code)], check=True)


def main() -> None:
    emit(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version())
    if "--compare" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 2
        compare(Path(sys.argv[sys.argv.index("--compare") + 1]).resolve(), runs)
        return
    if "--save-to-play" in sys.argv:
        save_to_play(str(CODE))
        return
    library = synth_library(OUT / "library")
    save_to_play(str(CODE))
    recut_bench(library)
    page_bench(library)


if __name__ == "__main__":
    main()
