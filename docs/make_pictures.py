"""The README's pictures, made from the demo so they show what the code does today.

``make docs`` runs ``python docs/make_pictures.py``: it makes the demo film in a scratch folder
(``montage demo``, the same command a reader runs), copies its contact sheet to
``docs/img/demo-contact.png``, then serves the studio on that project on a loopback port and
photographs the page in headless Chromium (``docs/img/studio.png``), one shot selected so the
inspector shows why its clip won. Nothing in the repository but those two files is written.
"""
from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
SHEET_WIDTH = 1000  # the README shows it at most this wide: a smaller file, text still legible
VIEWPORT = {"width": 1280, "height": 960}
SELECTED_SHOT = 9  # the studio screenshot's selected shot (1-based): library footage (a video), with candidates
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


def make_demo(out_dir: Path) -> Path:
    """`montage demo --out-dir OUT_DIR`; returns the project folder."""
    from montage.cli import main

    code = main(["demo", "--out-dir", str(out_dir), "--quiet"])
    if code != 0:
        raise SystemExit(f"montage demo failed (exit {code})")
    return out_dir / "project"


def contact_sheet(project: Path, dest: Path) -> None:
    from PIL import Image

    with Image.open(project / "contact.png") as sheet:
        if sheet.width > SHEET_WIDTH:
            height = round(sheet.height * SHEET_WIDTH / sheet.width)
            sheet = sheet.convert("RGB").resize((SHEET_WIDTH, height), Image.LANCZOS)
        sheet.save(dest, optimize=True)


def studio_screenshot(project: Path, dest: Path) -> None:
    """The studio on ``project``, as a browser shows it, with one shot selected."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("docs/make_pictures.py needs Debian's chromium for the studio picture "
                         "(apt-get install chromium, or `make system` as root)")
    from playwright.sync_api import sync_playwright

    from montage.pipeline import MakeOptions
    from montage.project import load_state
    from montage.studio import Studio, start_in_thread

    state = load_state(project)
    studio = Studio(Path(state.script), Path(state.library), project, Path(state.film),
                    MakeOptions(progress=False, given=frozenset()))  # the project's own settings
    job = studio.start()
    if job is not None:
        status = studio.wait(job, timeout=600)
        if status["error"]:
            raise SystemExit(f"the studio could not open the demo: {status['error']}")
    token = secrets.token_urlsafe(16)
    served = start_in_thread(studio, token)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{served.url}/?token={token}")
            page.wait_for_selector("body[data-ready='1']", timeout=60000)
            page.wait_for_function("() => document.getElementById('player').readyState >= 2",
                                   timeout=30000)
            shot = studio.snapshot()["shots"][SELECTED_SHOT - 1]
            page.click(f"#strip .clip[data-id='{shot['id']}']")
            page.wait_for_selector(f"#shot[data-id='{shot['id']}'] .cand", timeout=30000)
            page.wait_for_function(  # the player shows the selected shot's frame
                f"() => Math.abs(document.getElementById('player').currentTime - {shot['start']}) < 0.2",
                timeout=30000)
            page.wait_for_function(  # the thumbnails in view have loaded (lazy ones below do not)
                """() => [...document.querySelectorAll('#strip img, #shot img')].every(i =>
                    i.getBoundingClientRect().top > innerHeight || (i.complete && i.naturalWidth > 0))""",
                timeout=60000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(dest))
            browser.close()
            if errors:
                raise SystemExit("the studio page reported errors: " + "; ".join(errors))
    finally:
        served.stop()
        studio.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMG, help="where the pictures go (default: docs/img)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="montage-docs-") as tmp:
        project = make_demo(Path(tmp) / "demo")
        contact_sheet(project, args.out / "demo-contact.png")
        studio_screenshot(project, args.out / "studio.png")
    for name in ("demo-contact.png", "studio.png"):
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
