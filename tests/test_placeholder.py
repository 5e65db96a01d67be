"""Title cards for missing shots: right size, visibly labelled, text inside the frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generator.placeholder import BACKGROUND, LABEL_COLOUR, render_card
from planner.errors import RenderError


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB")).astype(int)


def _is_label(px: np.ndarray) -> np.ndarray:
    return (np.abs(px - np.array(LABEL_COLOUR)) < 60).all(axis=-1)


def _is_text(px: np.ndarray) -> np.ndarray:
    return px.min(axis=-1) > 150


def test_card_size_label_and_text(tmp_path: Path) -> None:
    path = render_card("A lighthouse keeper climbs the stairs", 320, 180, tmp_path / "c.png")
    px = _pixels(path)
    assert px.shape == (180, 320, 3)
    assert (px[-3:, :] == BACKGROUND).all(), "background is the dark card colour"
    label_rows = np.nonzero(_is_label(px).any(axis=1))[0]
    text_rows = np.nonzero(_is_text(px).any(axis=1))[0]
    assert label_rows.size and label_rows.min() < 180 * 0.25, "label sits at the top"
    assert text_rows.size and 180 * 0.3 < text_rows.mean() < 180 * 0.8, "text sits in the middle"
    assert _is_text(px).sum() > 300, "the shot text is drawn large"
    # centred: the bright text's left and right margins are about equal
    cols = np.nonzero(_is_text(px).any(axis=0))[0]
    assert abs(cols.min() - (319 - cols.max())) <= 12


def test_long_text_shrinks_to_fit(tmp_path: Path) -> None:
    short = _pixels(render_card("Rain", 640, 360, tmp_path / "s.png"))
    long = _pixels(render_card("rain on the window " * 40, 640, 360, tmp_path / "l.png"))
    margin = round(360 * 0.05)
    for px in (short, long):
        assert (px[:, :margin - 1] == BACKGROUND).all()
        assert (px[:, -margin + 1:] == BACKGROUND).all()
        assert (px[-margin + 1:, :] == BACKGROUND).all()
    # the long text needs many lines: its text covers more rows than one large word does
    rows = lambda px: np.nonzero(_is_text(px).any(axis=1))[0]  # noqa: E731
    assert rows(long).size > 3 * rows(short).size


def test_tiny_card_still_renders(tmp_path: Path) -> None:
    px = _pixels(render_card("A taxi in traffic at night", 64, 36, tmp_path / "t.png"))
    assert px.shape == (36, 64, 3)
    assert px.std() > 5, "not a blank image"


def test_too_small_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="8x8"):
        render_card("x", 8, 8, tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()
