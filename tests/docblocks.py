"""The command blocks of README.md and docs/*.md, read from the Markdown itself.

A fenced block whose info string is ``sh`` holds commands a reader types. It is run by
tests/test_docs_run.py unless the line just above its fence says why not, as an HTML comment
the page does not show: ``<!-- not run: needs a GPU -->``. So a new block is tested without new
test code, and a block that cannot run here says so in the page's source.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    not_run: str | None  # why it is not run, from the comment above the fence

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path, root: Path) -> list[Block]:
    """Every fenced block of one Markdown page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, language, start = m.group(1), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence[0] * len(fence)):
            body.append(lines[i])
            i += 1
        above = lines[start - 1] if start > 0 else ""
        reason = NOT_RUN.search(above)
        out.append(Block(str(path.relative_to(root)), start + 1, language, "\n".join(body) + "\n",
                         reason.group(1) if reason else None))
        i += 1
    return out


def pages(root: Path) -> list[Path]:
    """README.md and every page of docs/ (the generated command reference has no sh blocks)."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def command_blocks(root: Path) -> list[Block]:
    return [b for p in pages(root) for b in blocks(p, root) if b.language == "sh"]
