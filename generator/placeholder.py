"""Title cards for shots no footage matched, so a gap in the library shows up in the cut.

A card is deliberately plain and labelled: whoever watches the film must see at once that a
shot is missing and what it should have shown. Pillow's bundled scalable font (Pillow >= 10.1)
is used, so no system font and no root are needed.
"""
from __future__ import annotations

from pathlib import Path

from planner.errors import RenderError

LABEL = "MISSING SHOT - no footage chosen"  # none matched, or what did lost on rule costs
BACKGROUND = (20, 22, 28)
LABEL_COLOUR = (240, 170, 40)
TEXT_COLOUR = (235, 235, 235)
_MIN_SIZE = 6


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError) as exc:  # Pillow < 10.1 or no FreeType
        raise RenderError(
            "Pillow cannot load its scalable default font",
            "install Pillow >= 10.1 built with FreeType (pip install -U pillow)",
        ) from exc


def _wrap(text: str, font, max_width: float) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the box gets a line of its own."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if not line or font.getlength(trial) <= max_width:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _clip_line(line: str, font, max_width: float) -> str:
    """Shorten one line with '...' until it fits (only at the smallest font size)."""
    if font.getlength(line) <= max_width:
        return line
    while line and font.getlength(line + "...") > max_width:
        line = line[:-1]
    return line + "..."


def _layout(text: str, width: float, height: float, start: int):
    """The largest font size whose wrapped text fits the box, and its lines."""
    size = start
    while True:
        font = _font(size)
        lines = _wrap(text, font, width)
        line_h = size * 1.25
        widest = max((font.getlength(ln) for ln in lines), default=0.0)
        if (widest <= width and len(lines) * line_h <= height) or size <= _MIN_SIZE:
            break
        size = max(_MIN_SIZE, int(size * 0.9))
    max_lines = max(1, int(height // line_h))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " ..."
    return font, [_clip_line(ln, font, width) for ln in lines], line_h


def render_card(text: str, width: int, height: int, path: Path) -> Path:
    """Write a ``width`` x ``height`` PNG card: a small label on top, ``text`` large and centred."""
    from PIL import Image, ImageDraw

    if width < 16 or height < 9:
        raise RenderError(f"title card size {width}x{height} is too small",
                          "use a film size of at least 16x9 pixels")
    path = Path(path)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)

    margin = max(2, round(min(width, height) * 0.05))
    label_font, label_lines, label_h = _layout(
        LABEL, width - 2 * margin, height * 0.12, max(_MIN_SIZE, round(height * 0.055))
    )
    y = margin
    for line in label_lines[:1]:
        draw.text((width / 2, y), line, font=label_font, fill=LABEL_COLOUR, anchor="mt")
        y += label_h
    rule_y = round(y + margin / 2)
    draw.line([(margin, rule_y), (width - margin, rule_y)], fill=LABEL_COLOUR,
              width=max(1, height // 240))

    top = rule_y + margin
    box_w, box_h = width - 2 * margin, height - top - margin
    font, lines, line_h = _layout(text.strip(), box_w, box_h, max(_MIN_SIZE, round(height * 0.11)))
    block = len(lines) * line_h
    y = top + (box_h - block) / 2 + line_h / 2
    for line in lines:
        draw.text((width / 2, y), line, font=font, fill=TEXT_COLOUR, anchor="mm")
        y += line_h

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")
    except OSError as exc:
        raise RenderError(f"{path}: cannot write the title card ({exc})",
                          "check the work folder is writable") from exc
    return path
