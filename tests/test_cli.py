"""End to end through `montage.cli.main`: a tiny real library, the real pipeline, real ffmpeg."""
from __future__ import annotations

import json
import os
from pathlib import Path

import av
import pytest

from montage.cli import main
from montage.film import read_timeline
from planner.shots import ShotPlan
from retrieval.types import CandidateSet
from tests.conftest import make_clip, make_footage

SCRIPT = """A red wall fills the screen. A blue sky follows it.

A green field stretches away. A dragon made of glass sings opera on the moon.
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_footage(tmp_path_factory.mktemp("library"), ["red", "blue", "green"], seconds=1.5,
                        pattern=3.0, audio=True, stills={"stills/card.png": "testsrc2"},
                        still_size="48x64")


@pytest.fixture(scope="module")
def made(library, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("work")
    script = work / "story.txt"
    script.write_text(SCRIPT)
    out = work / "film.mp4"
    assert main(["make", str(script), "--library", str(library), "--out", str(out),
                 "--size", "128x72", "--quiet"]) == 0
    return work


def test_make_writes_every_artifact(made: Path):
    project = made / "film.montage"
    for name in ("plan.json", "candidates.json", "edit.otio", "report.md", "film.srt"):
        assert (project / name).is_file(), name
    assert (made / "film.srt").is_file()
    plan = ShotPlan.load(project / "plan.json")
    assert len(plan.shots) == 4
    cands = CandidateSet.from_json((project / "candidates.json").read_text())
    assert [c.shot_id for c in cands.shots] == [s.id for s in plan.shots]
    edl = read_timeline(project / "edit.otio")
    assert [d.shot_id for d in edl.decisions] == [s.id for s in plan.shots]
    used = [d.library_shot for d in edl.decisions if d.library_shot]
    assert len(used) == len(set(used))  # no library shot twice
    with av.open(str(made / "film.mp4")) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.width, v.height) == ("h264", 128, 72)
        assert c.streams.audio[0].codec_context.name == "aac"
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == edl.frames
    report = (project / "report.md").read_text()
    assert all(s.text in report for s in plan.shots)


def test_search_json_shape(library: Path, made: Path, capsys):
    capsys.readouterr()
    assert main(["search", str(library), "red", "a checkered pattern", "--top", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["query"] for d in data] == ["red", "a checkered pattern"]
    for entry in data:
        assert 1 <= len(entry["hits"]) <= 2
        for hit in entry["hits"]:
            assert set(hit) == {"path", "start", "end", "score", "moment"}
            assert (library / hit["path"]).is_file()


def test_index_again_reuses_everything(library: Path, made: Path, capsys):
    capsys.readouterr()
    assert main(["index", str(library), "--quiet"]) == 0
    assert "indexed 0 files, reused 3" in capsys.readouterr().out


@pytest.mark.parametrize("content,needle", [
    ("", "empty"),
    ("   \n\t\n", "empty"),
    (b"\x00\x01\x02binary\xff", "binary"),
    ("Der Hund läuft über die Straße, und die Kinder spielen im Garten mit dem Ball.", "English"),
])
def test_bad_script_is_one_clear_line(tmp_path, library, capsys, content, needle):
    script = tmp_path / "bad.txt"
    script.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "film.mp4"
    assert main(["make", str(script), "--library", str(library), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.txt" in err and "Traceback" not in err
    assert needle.lower() in err.lower()
    assert not out.exists()


def test_missing_and_empty_library(tmp_path, capsys):
    script = tmp_path / "s.txt"
    script.write_text("A red wall fills the screen.")
    assert main(["make", str(script), "--library", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("no media here")
    assert main(["make", str(script), "--library", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "film.mp4").exists()


def test_unwritable_output(tmp_path, library, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/montage-cannot-write/film.mp4")  # even root cannot create this
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "film.mp4"
    script = tmp_path / "s.txt"
    script.write_text("A red wall fills the screen.")
    assert main(["make", str(script), "--library", str(library), "--out", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_corrupt_video_is_skipped_not_fatal(tmp_path, capsys):
    lib = tmp_path / "lib"
    make_clip(lib / "good.mp4", duration=2.0)
    (lib / "broken.mp4").write_bytes(os.urandom(4096))
    (lib / "empty.mp4").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in lib.iterdir()}
    script = tmp_path / "s.txt"
    script.write_text("A colourful test pattern moves.")
    assert main(["make", str(script), "--library", str(lib), "--out", str(tmp_path / "f.mp4"),
                 "--size", "64x36", "--quiet"]) == 0
    assert (tmp_path / "f.mp4").is_file()
    assert {p.name: p.read_bytes() for p in lib.iterdir() if p.is_file()} == before  # sources untouched


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("make", "demo", "index", "search"):
        assert cmd in out


def test_output_cut_off_by_the_reader_is_no_traceback(tmp_path: Path):
    """`montage plan story.txt | head -1`: the reader closes the pipe early; montage stops
    quietly (exit 141, as a writer killed by SIGPIPE) instead of printing a traceback."""
    import subprocess
    import sys

    script = tmp_path / "story.txt"
    script.write_text(" ".join(f"A red door number {i} opens." for i in range(400)), encoding="utf-8")
    proc = subprocess.run(
        ["bash", "-c", f'"{Path(sys.executable).parent / "montage"}" plan "{script}" | head -1'],
        capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
