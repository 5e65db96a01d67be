"""Faults montage must survive: repeated lines, unreadable libraries, hand-changed projects."""
from __future__ import annotations

from pathlib import Path

import pytest

from montage.pipeline import MakeOptions, Recutter
from montage.film import read_timeline
from tests.conftest import make_clip, make_still

OPTIONS = MakeOptions(threshold=0.0, width=64, height=36, progress=False, contact_sheet=False)


def test_a_repeated_sentence_as_two_title_cards_renders(tmp_path):
    """Both copies of a refrain become identical title cards: one cache entry, encoded once."""
    lib = tmp_path / "lib"
    make_still(lib / "card.png")
    script = tmp_path / "story.txt"
    script.write_text("The bells ring out.\n\nA checkered card waits.\n\nThe bells ring out.\n")
    project, out = tmp_path / "proj", tmp_path / "film.mp4"
    opts = MakeOptions(threshold=0.99, width=64, height=36, progress=False, contact_sheet=False)
    res = Recutter(lib, project, opts).cut(script, out)
    edl = read_timeline(project / "edit.otio")
    cards = [d for d in edl.decisions if d.kind == "card"]
    assert len(cards) == 3 and res.placeholders == 3 and out.is_file()
    assert cards[0].text == cards[2].text
    # the two refrains are one segment: it is encoded once and reused
    assert res.encoded == 2, res
    assert not list((project / "cache").glob("*.tmp.mov"))


@pytest.mark.parametrize("cached", [True, False])
def test_identical_segments_are_encoded_once(tmp_path, cached):
    """At the render's depth: one refrain three times, with and without a clip cache."""
    from fractions import Fraction

    from montage.film import render_edit, write_timeline
    from montage.optimize import EditDecision, EditDecisionList
    from retrieval.ffmpeg import count_video_frames

    def card(shot: str, text: str) -> EditDecision:
        return EditDecision(shot, text, "placeholder", "card", "", 0, 12, 0.0)

    # 24 fps: 2000 samples a frame, so every 12-frame card has the same sound length
    edl = EditDecisionList(Fraction(24), 64, 36, (card("a", "Again."), card("b", "Once."),
                                                  card("c", "Again."), card("d", "Again.")))
    otio = write_timeline(edl, tmp_path / "e.otio")
    cache = tmp_path / "cache" if cached else None
    res = render_edit(otio, tmp_path / "film.mp4", cache=cache, workdir=tmp_path / "work")
    assert (res.encoded, res.reused) == (2, 2)
    assert count_video_frames(res.path) == 48
    if cached:
        assert len(list(cache.glob("*.mov"))) == 2 and not list(cache.glob("*.tmp.*"))
        again = render_edit(otio, tmp_path / "film2.mp4", cache=cache)
        assert again.encoded == 0
