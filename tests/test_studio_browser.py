"""montage studio in a real browser: Debian's chromium driven by Playwright, against the real
server on a loopback socket, on a small real project.

Skipped, with the reason in pytest's summary, where chromium or Playwright is missing
(``make system`` installs chromium from Debian when run as root). Screenshots go to the test's
folder, and also to $MONTAGE_SCREENSHOTS when it names a folder.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from montage.film import read_timeline
from montage.project import load_choices
from tests.studiokit import SENTENCES, TOKEN, make_library, new_studio, serve_in_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="studio browser tests need Debian's chromium (apt-get install chromium, or run "
           "`make system` as root) and Playwright (pip install playwright)")

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_library(tmp_path_factory.mktemp("browser-lib"))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A studio served for one test, and a browser page on it that fails on any page error."""

    def __init__(self, browser, studio, shots: Path) -> None:
        self.served = serve_in_thread(studio)
        self.studio = studio
        self.shots = shots
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 720})
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(f"{self.served.url}/?token={TOKEN}")
        self.page.wait_for_selector("body[data-ready='1']", timeout=30000)

    def cut(self, n: int) -> None:
        self.page.wait_for_selector(f"body[data-cut='{n}']:not([data-busy='1'])", timeout=120000)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"studio-{name}.png"
        self.page.screenshot(path=str(path))
        extra = os.environ.get("MONTAGE_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    def close(self) -> None:
        self.page.close()
        self.served.stop()


@pytest.fixture
def page(browser, tmp_path, library):
    p = Page(browser, new_studio(tmp_path, library), tmp_path)
    yield p
    p.close()
    assert p.errors == [] and p.dialogs == []


def clips(project: Path) -> dict[str, tuple[str, int, int]]:
    return {d.shot_id: (d.library_shot, d.source_in, d.frames)
            for d in read_timeline(project / "edit.otio").decisions}


def retype(page: Page, shot: str, word: str, text: str) -> None:
    """Select ``word`` in the shot's sentence in the editor and type ``text`` over it."""
    page.page.evaluate("""([id, word]) => {
        const span = document.querySelector(`#editor .shot[data-id="${id}"]`);
        const node = span.firstChild, at = node.textContent.indexOf(word);
        const r = document.createRange(); r.setStart(node, at); r.setEnd(node, at + word.length);
        const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r);
        document.getElementById('editor').focus();
    }""", [shot, word])
    page.page.keyboard.type(text)


def test_the_page_lists_the_sentences_and_plays_the_film(page):
    texts = page.page.locator("#editor .shot").all_text_contents()
    assert texts == SENTENCES
    assert page.page.locator("#strip .clip").count() == len(SENTENCES)
    page.page.wait_for_function("() => document.getElementById('player').readyState >= 2", timeout=20000)
    assert page.page.evaluate("document.getElementById('player').videoWidth") == 160  # H.264 plays
    page.page.evaluate("(() => { const v = document.getElementById('player'); v.muted = true; return v.play(); })()")
    page.page.wait_for_function("() => document.getElementById('player').currentTime > 0.3", timeout=10000)
    page.page.wait_for_selector("#editor .shot.current")  # the playing shot's text is highlighted
    page.screenshot("playing")


def test_clicking_a_sentence_seeks_the_film_and_shows_the_shot(page):
    data = page.studio.snapshot()["shots"]
    third = data[2]
    page.page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=20000)
    page.page.click(f"#editor .shot[data-id='{third['id']}']")
    page.page.wait_for_function(
        f"() => Math.abs(document.getElementById('player').currentTime - {third['start']}) < 0.1",
        timeout=10000)
    page.page.wait_for_selector("#shot .cand")
    assert third["text"] in page.page.text_content("#shot")
    page.screenshot("selected")


def test_editing_one_sentence_and_saving_recuts_only_that_shot(page):
    before = clips(page.studio.project)
    target, fourth = page.studio.snapshot()["shots"][1], page.studio.snapshot()["shots"][3]
    page.page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=20000)
    page.page.click(f"#editor .shot[data-id='{fourth['id']}']")  # the playhead on shot 4
    retype(page, target["id"], "blue", "deep green")
    assert page.page.is_visible("#dirty")
    page.page.keyboard.press("Control+s")
    page.cut(2)
    after = clips(page.studio.project)
    changed = [s for s in after if s not in before or after[s] != before[s]]
    assert len(changed) == 1 and changed[0] not in before  # the edited shot (a new id), only
    assert "The deep green sea is calm tonight." in page.studio.script.read_text()
    assert page.page.locator("#editor .shot").all_text_contents()[1] == "The deep green sea is calm tonight."
    assert not page.page.is_visible("#dirty")
    start = next(s["start"] for s in page.studio.snapshot()["shots"] if s["id"] == fourth["id"])
    # the new film plays, from the shot the playhead was on
    page.page.wait_for_selector("body[data-playing-cut='2']", timeout=20000)
    assert abs(float(page.page.get_attribute("#player", "data-from")) - start) < 0.01
    assert page.page.evaluate("document.getElementById('player').currentTime") >= start
    page.screenshot("recut")


def test_the_inspector_follows_an_edited_sentence_into_the_new_cut(page):
    """Select a sentence, rewrite it, save: the inspector, the selection and the playhead move
    to the new shot that replaced it (its own id, score and file), and the film plays from it."""
    old = page.studio.snapshot()["shots"][2]
    page.page.click(f"#editor .shot[data-id='{old['id']}']")
    page.page.wait_for_selector(f"#shot[data-id='{old['id']}'] .cand")
    retype(page, old["id"], "green", "wide green")
    page.page.click("#save")
    page.cut(2)
    new = next(s for s in page.studio.snapshot()["shots"] if s["previous"] == old["id"])
    assert new["id"] != old["id"] and new["text"] == "A wide green field waits for the rain."
    page.page.wait_for_selector(f"#shot[data-id='{new['id']}']", timeout=20000)
    inspector = page.page.text_content("#shot")
    assert new["text"] in inspector and old["text"] not in inspector
    why = new["confidence_text"] or f"score {new['score']:.3f}"  # sd above the library's scores
    assert why in inspector and f"file: {new['file']}" in inspector
    assert page.page.get_attribute("#shot", "data-file") == new["file"]
    assert page.page.locator(f"#editor .shot.selected[data-id='{new['id']}']").count() == 1
    assert page.page.locator(f"#strip .clip.selected[data-id='{new['id']}']").count() == 1
    page.page.wait_for_selector("body[data-playing-cut='2']", timeout=20000)
    assert abs(float(page.page.get_attribute("#player", "data-from")) - new["start"]) < 0.01
    assert int(page.page.get_attribute("body", "data-save-to-play-ms")) > 0
    page.screenshot("followed")


def test_choosing_a_candidate_pins_it_in_the_next_cut(page):
    shot = page.studio.snapshot()["shots"][3]
    page.page.click(f"#strip .clip[data-id='{shot['id']}']")
    page.page.wait_for_selector("#shot .cand")
    card = page.page.locator("#shot .cand:not(.chosen):not(.banned)").first
    clip = card.get_attribute("data-clip")
    choice = card.locator("button.use")
    page.page.hover("#shot .cand:not(.chosen) .pic >> nth=0")  # a short preview plays on hover
    page.page.wait_for_selector("#shot .cand .pic video")
    page.screenshot("candidates")
    choice.click()
    page.cut(2)
    assert clips(page.studio.project)[shot["id"]][0] == clip
    assert load_choices(page.studio.project).pins[shot["id"]] == clip
    page.page.wait_for_selector(f"#shot .cand.chosen[data-clip='{clip}']")
    assert page.page.is_visible("#unpin")


def test_a_generated_shot_says_what_it_is_and_how_it_measured(page):
    shot = page.studio.snapshot()["shots"][2]
    page.page.click(f"#strip .clip[data-id='{shot['id']}']")
    page.page.wait_for_selector("#shot #generate")
    page.page.click("#shot #generate")
    page.cut(2)
    page.page.click(f"#strip .clip[data-id='{shot['id']}']")
    page.page.wait_for_selector("#shot .fill", timeout=20000)
    facts = page.page.text_content("#shot .facts")
    assert "stand-in (composed from library frames" in facts
    assert "measured" in page.page.text_content("#shot .fill") and "runner-up fill" in facts
    page.screenshot("stand-in")


def test_a_failed_edit_shows_its_message_and_keeps_the_film(page):
    film = page.page.get_attribute("#player", "src")
    page.page.evaluate("document.getElementById('editor').textContent = '   '")
    page.page.click("#save")
    page.page.wait_for_selector("#script-error:not([hidden])", timeout=30000)
    assert "empty" in page.page.text_content("#script-error")
    assert page.page.get_attribute("#player", "src") == film
    assert page.studio.script.read_text().startswith(SENTENCES[0])
    page.screenshot("error")


def test_history_lists_cuts_and_goes_back(page):
    page.page.select_option("#style", "calm")
    page.cut(2)
    assert page.page.locator("#cuts li").count() == 2
    page.page.click("#cuts button[data-cut='1']")
    page.cut(3)
    assert clips(page.studio.project) == clips(page.studio.project / "history" / "0001")
    page.screenshot("history")


def test_what_the_page_shows_is_escaped(browser, tmp_path, library):
    hostile = ["A red door opens <script>alert(1)</script> slowly.",
               "The sea <img src=x onerror=alert(2)> is calm tonight."] + SENTENCES[2:]
    p = Page(browser, new_studio(tmp_path, library, hostile), tmp_path)
    try:
        texts = p.page.locator("#editor .shot").all_text_contents()
        assert texts[0] == hostile[0] and texts[1] == hostile[1]
        assert p.page.locator("#editor script, #editor img, #strip script").count() == 0
        p.page.click("#strip .clip >> nth=0")
        p.page.wait_for_selector("#shot .cand")
        assert "<script>alert(1)</script>" in p.page.text_content("#shot")
        time.sleep(0.3)
        p.screenshot("escaped")
    finally:
        p.close()
    assert p.dialogs == [] and p.errors == []


def test_the_library_files_not_used_are_listed_escaped(browser, tmp_path, library):
    lib = tmp_path / "library"
    shutil.copytree(library, lib, symlinks=True)
    hostile = "<img src=x onerror=alert(3)>.pdf"
    (lib / hostile).write_bytes(b"%PDF-1.4\n")
    (lib / "empty.mov").write_bytes(b"")
    p = Page(browser, new_studio(tmp_path, library), tmp_path)  # indexes the new files
    try:
        p.page.wait_for_selector("#skipped:not([hidden])")
        assert p.page.text_content("#skipped-title") == \
            "2 library files not used (1 not media, 1 zero length)"
        p.page.click("#skipped summary")
        items = p.page.locator("#skipped-list li").all_text_contents()
        assert any(hostile in t and "not media" in t for t in items)
        assert any("empty.mov" in t and "zero length" in t for t in items)
        assert p.page.locator("#skipped img").count() == 0
        time.sleep(0.3)
        p.screenshot("skipped")
    finally:
        p.close()
    assert p.dialogs == [] and p.errors == []
