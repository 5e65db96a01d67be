"""Docs that run: every ``sh`` block of README.md and docs/ is run, in order, page by page.

Each page gets a fresh sandbox that looks like a reader's machine after `make demo`: `montage`
on the PATH, `~/footage` (the demo library), and in the working folder `story.txt` (the demo
script) and `cast.toml` (its cast). A block that cannot run offline here (a GPU, the network,
a Ray cluster, a server that waits for Ctrl-C) carries ``<!-- not run: WHY -->`` on the line
above its fence, and is reported as skipped with that reason. See tests/docblocks.py.
"""
from __future__ import annotations

import os
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


def _sandbox(tmp: Path) -> tuple[Path, dict[str, str]]:
    from montage.cli.demo import DEMO, fetch_demo_library

    home = tmp / "home"
    work = tmp / "work"
    home.mkdir()
    work.mkdir()
    library = fetch_demo_library()
    shutil.copytree(library, home / "footage", ignore=shutil.ignore_patterns(".montage"))
    shutil.copy(DEMO / "script.txt", work / "story.txt")
    shutil.copy(DEMO / "cast.toml", work / "cast.toml")
    (work / "library").symlink_to(home / "footage")  # cast.toml's photos are relative to it
    env = dict(os.environ)
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               HF_HUB_OFFLINE="1", MONTAGE_DOCS_TEST="1")
    env.pop("XDG_CONFIG_HOME", None)
    return work, env


def _run(block: Block, work: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, (
        f"{block.where}: this command block failed (exit {proc.returncode}):\n{block.text}\n"
        f"--- stderr (tail) ---\n{proc.stderr[-3000:]}\n--- stdout (tail) ---\n{proc.stdout[-1500:]}")


BLOCKS = command_blocks(ROOT)
_SANDBOXES: dict[str, tuple[Path, dict[str, str]]] = {}


@pytest.fixture(scope="module")
def sandbox_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs")


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_the_command_block_runs(block: Block, sandbox_root: Path):
    """Blocks run in page order; the blocks of one page share one sandbox, so a later block can
    use what an earlier one made (a film, then its history)."""
    if block.not_run:
        pytest.skip(f"{block.where}: not run: {block.not_run}")
    if block.page not in _SANDBOXES:
        folder = sandbox_root / block.page.replace("/", "_")
        folder.mkdir()
        _SANDBOXES[block.page] = _sandbox(folder)
    work, env = _SANDBOXES[block.page]
    _run(block, work, env)
