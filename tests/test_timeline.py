"""The edit on disk (OTIO) and its captions (SRT) read back exactly what was written."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from montage.optimize import EditDecision, EditDecisionList
from montage.film import edl_to_timeline, read_srt, read_timeline, write_srt, write_timeline
from planner.errors import ProjectError


def _edl(media: Path, rate: Fraction = Fraction(30000, 1001)) -> EditDecisionList:
    return EditDecisionList(
        rate=rate,
        width=1280,
        height=720,
        decisions=(
            EditDecision("s1", "A taxi — in traffic", "library", "video", str(media), 137, 45,
                         0.1 + 0.2, "bikes.mp4#2", "best match for 'taxi'"),
            EditDecision("s2", "Nothing like this exists", "placeholder", "card", "", 0, 36,
                         0.25, "", "no candidate above the threshold"),
            EditDecision("s3", "A still of a cat", "library", "still",
                         str(media.with_suffix(".png")), 0, 60, 0.7071067811865476, "cat.png#0", ""),
        ),
    )


def _ref(clip: dict) -> dict:
    """The active media reference of a Clip.2 in OTIO JSON."""
    return clip["media_references"][clip["active_media_reference_key"]]


def test_round_trip_is_exact(tmp_path: Path) -> None:
    edl = _edl(tmp_path / "my footage" / "clip #1.mp4")
    path = write_timeline(edl, tmp_path / "edit.otio")
    assert read_timeline(path) == edl
    assert not list(tmp_path.glob(".*partial"))


def test_file_holds_otio_references_and_metadata(tmp_path: Path) -> None:
    media = tmp_path / "my footage" / "clip.mp4"
    path = write_timeline(_edl(media), tmp_path / "edit.otio", name="film")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["OTIO_SCHEMA"].startswith("Timeline.")
    assert data["metadata"]["montage"] == {"version": 1, "width": 1280, "height": 720,
                                           "rate": "30000/1001"}
    tracks = data["tracks"]["children"]
    assert len(tracks) == 1 and tracks[0]["kind"] == "Video"
    clips = tracks[0]["children"]
    ext, gen = _ref(clips[0]), _ref(clips[1])
    assert ext["OTIO_SCHEMA"].startswith("ExternalReference.")
    assert ext["target_url"] == media.as_uri() and ext["target_url"].startswith("file://")
    assert gen["OTIO_SCHEMA"].startswith("GeneratorReference.")
    assert gen["generator_kind"] == "montage.title_card"
    assert gen["parameters"]["text"] == "Nothing like this exists"
    for clip in clips:
        assert {"shot_id", "score", "source", "kind", "text", "library_shot",
                "reason"} <= set(clip["metadata"]["montage"])
    assert clips[0]["source_range"]["start_time"]["value"] == 137
    assert clips[0]["source_range"]["duration"]["value"] == 45


def test_timeline_object_has_one_video_track(tmp_path: Path) -> None:
    timeline = edl_to_timeline(_edl(tmp_path / "a.mp4", Fraction(24)), "x")
    assert timeline.name == "x"
    assert [t.kind for t in timeline.tracks] == ["Video"]
    assert len(list(timeline.tracks[0])) == 3


def test_an_edit_made_in_the_file_is_what_is_read(tmp_path: Path) -> None:
    path = write_timeline(_edl(tmp_path / "a.mp4", Fraction(24)), tmp_path / "edit.otio")
    data = json.loads(path.read_text(encoding="utf-8"))
    clip = data["tracks"]["children"][0]["children"][0]
    clip["source_range"]["start_time"]["value"] = 10
    clip["source_range"]["duration"]["value"] = 20
    _ref(clip)["target_url"] = (tmp_path / "other.mp4").as_uri()
    path.write_text(json.dumps(data), encoding="utf-8")
    d = read_timeline(path).decisions[0]
    assert (d.source_in, d.frames, d.media) == (10, 20, str(tmp_path / "other.mp4"))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="nope.otio"):
        read_timeline(tmp_path / "nope.otio")


def test_not_otio_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.otio"
    bad.write_text("this is not json {", encoding="utf-8")
    with pytest.raises(ProjectError, match="bad.otio"):
        read_timeline(bad)


def test_missing_montage_metadata_names_the_file_and_clip(tmp_path: Path) -> None:
    path = write_timeline(_edl(tmp_path / "a.mp4"), tmp_path / "edit.otio")
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["tracks"]["children"][0]["children"][1]["metadata"]["montage"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProjectError, match=r"edit\.otio: clip 1 \('s2'\)"):
        read_timeline(path)

    data = json.loads(write_timeline(_edl(tmp_path / "a.mp4"), path).read_text(encoding="utf-8"))
    del data["metadata"]["montage"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProjectError, match=r"edit\.otio: timeline has no metadata"):
        read_timeline(path)


def test_srt_times_follow_the_cuts(tmp_path: Path) -> None:
    edl = EditDecisionList(Fraction(24), 64, 36, (
        EditDecision("a", "First line\nof text", "library", "video", "/m.mp4", 0, 36, 0.5),
        EditDecision("b", "", "library", "video", "/m.mp4", 0, 12, 0.5),
        EditDecision("c", "Third", "placeholder", "card", "", 0, 24 * 3600 + 1, 0.2),
    ))
    path = write_srt(edl, tmp_path / "film.srt")
    text = path.read_text(encoding="utf-8")
    assert "00:00:00,000 --> 00:00:01,500" in text
    assert "00:00:02,000 --> 01:00:02,042" in text
    assert read_srt(path) == [(0.0, 1.5, "First line of text"), (2.0, 3602.042, "Third")]


def test_srt_at_ntsc_rate_rounds_to_the_millisecond(tmp_path: Path) -> None:
    edl = EditDecisionList(Fraction(30000, 1001), 64, 36, (
        EditDecision("a", "One", "library", "video", "/m.mp4", 0, 100, 0.5),
        EditDecision("b", "Two", "library", "video", "/m.mp4", 0, 1, 0.5),
    ))
    cues = read_srt(write_srt(edl, tmp_path / "f.srt"))
    assert cues == [(0.0, 3.337, "One"), (3.337, 3.37, "Two")]


def test_bad_srt_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:00,000 --> 00:00:01,000\nok\n\n2\nnot a time\n", encoding="utf-8")
    with pytest.raises(ProjectError, match=r"bad\.srt:6"):
        read_srt(bad)
