"""montage studio speed: `python bench/studio.py` (part of `make bench`).

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
sys.path.insert(0, str(ROOT))

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


def main() -> None:
    emit(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version())
    library = synth_library(OUT / "library")
    recut_bench(library)
    page_bench(library)


if __name__ == "__main__":
    main()
