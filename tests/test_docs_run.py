"""Docs that run: every ``sh`` block of README.md and docs/ is run, in order, page by page.

Each page gets a fresh sandbox that looks like a reader's machine after `make demo`: `montage`
on the PATH, `~/footage` (the demo library), and in the working folder `story.txt` (the demo
script), `cast.toml` (its cast) and `song.mp3` (a click track for --music). A block that cannot run offline here (a GPU, the network,
a Ray cluster, a server that waits for Ctrl-C) carries ``<!-- not run: WHY -->`` on the line
above its fence, and is reported as skipped with that reason. See tests/docblocks.py.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docblocks import Block, blocks, command_blocks, pages

ROOT = Path(__file__).resolve().parent.parent
BLOCK_TIMEOUT = 600  # seconds; a block that hangs fails instead of stalling CI


def test_blocks_and_their_reasons_are_read_from_the_markdown(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```sh\nmontage plan story.txt\n```\n\n<!-- not run: needs a GPU -->\n"
                    "```sh\nmontage index ~/footage --device cuda\n```\n\n```\nplain text\n```\n")
    found = blocks(page, tmp_path)
    assert [(b.line, b.language, b.not_run) for b in found] == [
        (3, "sh", None), (8, "sh", "needs a GPU"), (12, "", None)]
    assert found[1].text == "montage index ~/footage --device cuda\n"


def test_every_command_a_reader_types_is_in_an_sh_block():
    """A block of `montage` commands without the `sh` tag would escape this test: name it."""
    untagged = []
    for path in pages(ROOT):
        for b in blocks(path, ROOT):
            first = next((ln.strip() for ln in b.text.splitlines() if ln.strip()), "")
            if b.language in ("", "bash", "shell", "console") and (
                    first.startswith(("montage ", ".venv/bin/montage ", "make "))):
                untagged.append(b.where)
    assert untagged == [], "tag these blocks ```sh (or give them a not-run reason)"


SONG_BPM = 120.0  # the sandbox's song.mp3: a click track, so --music has beats to find


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_every_link_between_pages_and_every_picture_is_there():
    """A renamed page or a picture `make docs` no longer makes would leave a dead link."""
    dead = []
    for path in pages(ROOT):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for target in LINK.findall(line):
                if target.startswith(("http://", "https://", "mailto:", "#")):
                    continue
                if not (path.parent / target.split("#")[0]).exists():
                    dead.append(f"{path.relative_to(ROOT)}:{n}: {target}")
    assert dead == []


def _template(root: Path, env: dict[str, str]) -> Path:
    """A reader's machine after `make demo`, made once per session: ``home/footage`` (a copy of
    the demo library, indexed once so each page does not index it again), ``work/story.txt``
    (the demo script), ``work/cast.toml`` (its cast; its photos are under ``work/library``) and
    ``work/song.mp3`` (music for --music)."""
    from montage.cli.demo import DEMO, fetch_demo_library
    from tests.test_sound import make_music

    home, work = root / "home", root / "work"
    work.mkdir(parents=True)
    shutil.copytree(fetch_demo_library(), home / "footage", ignore=shutil.ignore_patterns(".montage"))
    shutil.copy(DEMO / "script.txt", work / "story.txt")
    shutil.copy(DEMO / "cast.toml", work / "cast.toml")
    make_music(work / "song.mp3", SONG_BPM, 30)
    subprocess.run(["montage", "index", str(home / "footage"), "--quiet"], env={**env, "HOME": str(home)},
                   check=True, capture_output=True, timeout=BLOCK_TIMEOUT)
    return root


def _environment(cache: Path) -> dict[str, str]:
    """This process's environment (the session's empty model store comes from conftest), with
    `montage` on the PATH, no network to the hub, and one cache folder shared by every page
    (label vectors and probe sentences are computed once)."""
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               HF_HUB_OFFLINE="1", XDG_CACHE_HOME=str(cache), MONTAGE_DOCS_TEST="1")
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "MONTAGE_CACHE_DIR"):
        env.pop(name, None)
    return env


def _sandbox(template: Path, folder: Path, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A page's own copy of the template: what one page's blocks do is not seen by another."""
    shutil.copytree(template / "home", folder / "home", symlinks=True)
    shutil.copytree(template / "work", folder / "work", symlinks=True)
    (folder / "work" / "library").symlink_to(folder / "home" / "footage")  # cast.toml's photos
    return folder / "work", {**env, "HOME": str(folder / "home")}


def _run(block: Block, work: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, (
        f"{block.where}: this command block failed (exit {proc.returncode}):\n{block.text}\n"
        f"--- stderr (tail) ---\n{proc.stderr[-3000:]}\n--- stdout (tail) ---\n{proc.stdout[-1500:]}")


BLOCKS = command_blocks(ROOT)
_SANDBOXES: dict[str, tuple[Path, dict[str, str]]] = {}


@pytest.fixture(scope="module")
def sandbox_root(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(template, folder for the pages' sandboxes, environment)."""
    root = tmp_path_factory.mktemp("docs")
    env = _environment(root / "cache")
    return _template(root / "template", env), root, env


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_the_command_block_runs(block: Block, sandbox_root):
    """Blocks run in page order; the blocks of one page share one sandbox, so a later block can
    use what an earlier one made (a film, then its history)."""
    if block.not_run:
        pytest.skip(f"{block.where}: not run: {block.not_run}")
    template, root, env = sandbox_root
    if block.page not in _SANDBOXES:
        folder = root / block.page.replace("/", "_")
        folder.mkdir()
        _SANDBOXES[block.page] = _sandbox(template, folder, env)
    work, page_env = _SANDBOXES[block.page]
    _run(block, work, page_env)
