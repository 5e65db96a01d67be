"""montage studio without a browser: the API, the recut jobs, and the server's security.

The app is the real Starlette app, driven through Starlette's TestClient (or a real socket
where the port matters); the project is a real one (ffmpeg clips, real index and renderer).
"""
from __future__ import annotations

import os
from dataclasses import replace
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from montage.cli import main
from montage.film import read_timeline
from montage.project import load_choices, load_state
from montage.studio import create_app, listen
from montage.studio.session import Media, script_spans
from planner.errors import ProjectError
from planner.plan import plan_text
from tests.studiokit import SENTENCES, TOKEN, make_library, new_studio, script_text

HOST = "testserver"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_library(tmp_path_factory.mktemp("studio-lib"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory, library):
    """One studio for the read-only tests."""
    return new_studio(tmp_path_factory.mktemp("studio-shared"), library)


@pytest.fixture
def studio(tmp_path, library):
    """A studio of its own, for tests that change the project."""
    return new_studio(tmp_path, library)


def client(studio, *, cookie: bool = True) -> TestClient:
    c = TestClient(create_app(studio, TOKEN, {HOST}), base_url=f"http://{HOST}")
    if cookie:
        c.cookies.set("montage_studio", TOKEN)
    return c


def post(c: TestClient, path: str, body, **headers):
    return c.post(path, json=body, headers={"X-Montage-Token": TOKEN, **headers})


def edl_clips(project: Path) -> dict[str, tuple[str, int, int]]:
    return {d.shot_id: (d.library_shot, d.source_in, d.frames)
            for d in read_timeline(project / "edit.otio").decisions}


# -- the page and the API -------------------------------------------------------------------------
def test_the_token_opens_the_page_and_becomes_a_cookie(shared):
    c = client(shared, cookie=False)
    first = c.get(f"/?token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert "samesite=strict" in first.headers["set-cookie"].lower()
    page = c.get("/")  # the cookie now stands for the token
    assert page.status_code == 200 and 'name="montage-token"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_snapshot_lists_every_shot_with_its_place_in_the_script(shared):
    data = client(shared).get("/api/project").json()
    assert [s["text"] for s in data["shots"]] == SENTENCES
    assert data["cut"] == 1 and data["film"] == "/media/film/1.mp4"
    for s in data["shots"]:
        a, b = s["span"]
        assert data["script"][a:b] == s["text"]
        assert "candidates" not in s  # they come with /api/shot, so a big project loads fast
    assert [s["scene"] for s in data["shots"]] == [0, 0, 0, 1, 1]
    one = client(shared).get(f"/api/shot/{data['shots'][1]['id']}").json()
    assert one["candidates"] and sum(c["chosen"] for c in one["candidates"]) <= 1


def test_spans_survive_line_breaks_inside_a_sentence():
    text = "A red door\nopens slowly. The sea is calm.\n"
    plan = plan_text(text)
    spans = script_spans(text, plan)
    assert [text[a:b] for a, b in spans.values()] == ["A red door\nopens slowly.", "The sea is calm."]


def test_the_film_is_served_with_ranges_so_the_player_can_seek(shared):
    c = client(shared)
    # the film as the cut made it (its preview: FLAC sound), kept by a name of its own while
    # the finished film (AAC) takes film.mp4's place
    played = shared.playing(1)
    assert played.parent == shared.project / "cache" / "studio"
    size = os.path.getsize(played)
    assert size != os.path.getsize(load_state(shared.project).film)
    whole = c.get("/media/film/1.mp4")
    assert whole.status_code == 200 and len(whole.content) == size
    part = c.get("/media/film/1.mp4", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == whole.content[100:200]
    tail = c.get("/media/film/1.mp4", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    assert c.get("/media/film/1.mp4", headers={"Range": f"bytes={size}-"}).status_code == 416
    assert c.get("/media/film/7.mp4").status_code == 404  # not the current cut


def test_thumbnails_and_previews_are_made_for_candidates(shared):
    c = client(shared)
    shot = client(shared).get("/api/project").json()["shots"][0]
    thumb = c.get(f"/media/thumb/{shot['media']}.jpg")
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # a JPEG
    preview = c.get(f"/media/preview/{shot['media']}.mp4")
    assert preview.status_code == 200 and preview.content[4:8] == b"ftyp"


def test_downloads_are_the_projects_files_by_fixed_names(shared):
    c = client(shared)
    r = c.get("/download/edit.otio")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.content == (shared.project / "edit.otio").read_bytes()
    assert c.get("/download/film.mp4").status_code == 200
    assert c.get("/download/state.json").status_code == 404


def test_the_cut_downloads_in_an_editors_format(shared):
    c = client(shared)
    fcpxml = c.get("/download/edit.fcpxml")
    assert fcpxml.status_code == 200 and b"<fcpxml" in fcpxml.content
    bundle = c.get("/download/edit.otioz")
    assert bundle.status_code == 200 and bundle.content[:2] == b"PK"  # a zip, media inside
    assert c.get("/download/edit.docx").status_code == 404


# -- security ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/api/project", "/api/status", "/media/film/1.mp4",
                                  "/download/film.mp4", "/api/shot/x"])
def test_every_request_needs_the_token(shared, path):
    r = client(shared, cookie=False).get(path)
    assert r.status_code == 403
    assert client(shared, cookie=False).get(path + ("&" if "?" in path else "?") + "token=wrong").status_code == 403


@pytest.mark.parametrize("path", [
    "/download/..%2fstate.json", "/download/%2e%2e%2fstate.json", "/download/.%2e",
    "/download//etc/passwd", "/download/%2Fetc%2Fpasswd",
    "/media/thumb/..%2f..%2f..%2fetc%2fpasswd.jpg", "/media/thumb/%2Fetc%2Fpasswd.jpg",
    "/media/preview/....%2F....%2Fstory.txt.mp4", "/static/..%2fsession.py", "/static/studio.py",
    "/media/film/..%2f..%2fstory.txt.mp4", "/media/thumb/0000000000000000.jpg",
])
def test_no_file_is_served_by_a_path_from_the_request(shared, path):
    r = client(shared).get(path)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])


def test_a_symlink_out_of_the_library_is_not_served(shared, tmp_path):
    outside = tmp_path / "secret.png"
    shutil.copy(shared.library / "card.png", outside)
    link = shared.library / "escape.png"
    link.symlink_to(outside)
    try:
        shared.snapshot()
        shared._media["e" * 16] = Media(path=link, kind="still", at=0.0, start=0.0, end=0.0)
        assert client(shared).get("/media/thumb/" + "e" * 16 + ".jpg").status_code == 404
        assert shared.media("e" * 16) is None
    finally:
        link.unlink()


def test_changes_need_the_header_token_and_our_origin(studio):
    c = client(studio)
    body = {"style": "calm"}
    assert c.post("/api/style", json=body).status_code == 403  # the cookie alone is not enough
    assert post(c, "/api/style", body, Origin="http://evil.example").status_code == 403
    assert c.put("/api/style", json=body, headers={"X-Montage-Token": TOKEN}).status_code in (403, 405)
    r = post(c, "/api/style", body, Origin=f"http://{HOST}")
    assert r.status_code == 202
    assert studio.wait(r.json()["job"])["error"] is None


def test_a_foreign_host_header_is_refused(shared):
    c = client(shared)
    assert c.get("/api/status", headers={"Host": "evil.example:8765"}).status_code == 421


def test_bad_requests_get_a_4xx_with_a_message(shared):
    c = client(shared)
    r = post(c, "/api/pin", {"shot": "sh-nope", "clip": "x"})
    assert r.status_code == 404 and "no shot" in r.json()["error"]
    first = c.get("/api/project").json()["shots"][0]["id"]
    r = post(c, "/api/pin", {"shot": first, "clip": "../../etc/passwd"})
    assert r.status_code == 404 and "not a candidate" in r.json()["error"]
    assert post(c, "/api/pin", {"shot": first}).status_code == 400
    assert post(c, "/api/trim", {"shot": first, "steps": "1"}).status_code == 400
    assert post(c, "/api/nope", {}).status_code == 404
    assert c.post("/api/pin", content=b"{not json", headers={"X-Montage-Token": TOKEN}).status_code == 400
    assert post(c, "/api/style", {"style": "nope"}).status_code == 400
    assert c.get("/api/shot/sh-nope").status_code == 404


def test_a_port_in_use_is_one_clear_error():
    busy = listen("127.0.0.1", 0)
    try:
        with pytest.raises(ProjectError, match="in use") as info:
            listen("127.0.0.1", busy.getsockname()[1])
        assert "--port" in info.value.hint
    finally:
        busy.close()


def test_a_project_from_another_library_is_refused(shared, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    assert main(["studio", str(shared.project), "--library", str(other)]) == 2
    assert "made from the library" in capsys.readouterr().err


def test_a_make_on_the_studios_project_is_told_who_holds_it(shared):
    state = load_state(shared.project)
    code = ("import sys; from montage.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "make", state.script, "--library",
                           state.library, "--out", state.film, "--project", str(shared.project),
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "montage studio" in done.stderr and str(os.getpid()) in done.stderr
    assert "Traceback" not in done.stderr


# -- recuts ------------------------------------------------------------------------------------------
def test_saving_one_sentence_recuts_only_that_shot(studio):
    before = edl_clips(studio.project)
    edited = list(SENTENCES)
    edited[1] = "The deep blue sea is calm tonight."
    c = client(studio)
    r = post(c, "/api/script", {"text": script_text(edited)})
    job = r.json()["job"]
    asked = c.get(f"/api/status?after={job}").json()  # answers when done, or after a moment
    assert asked["done"] == job or asked["state"] == "working"
    status = studio.wait(job)
    assert status["error"] is None and status["cut"] == 2
    assert c.get(f"/api/status?after={job}").json()["done"] == job  # at once: it is done
    assert c.get("/api/status?after=x").status_code == 200
    after = edl_clips(studio.project)
    assert len(set(before) & set(after)) == len(SENTENCES) - 1  # one shot id changed
    assert all(after[s] == before[s] for s in before if s in after)
    assert studio.script.read_text() == script_text(edited)


def test_a_save_plays_a_preview_and_then_writes_the_finished_film(studio):
    """The recut commits with a preview (the clips' FLAC sound, joined without encoding) that
    the page plays; then the AAC film takes film.mp4's place, with its contact sheet."""
    import av

    edited = list(SENTENCES)
    edited[2] = "A wide green field waits for the rain."
    studio.recutter.set_options(replace(studio.recutter.options, contact_sheet=True))
    c = client(studio)
    status = studio.wait(post(c, "/api/script", {"text": script_text(edited)}).json()["job"])
    assert status["error"] is None and status["cut"] == 2 and not status["finishing"]
    codec = {}
    for name, path in (("played", studio.playing(2)), ("film", studio.out)):
        with av.open(str(path)) as f:
            codec[name] = f.streams.audio[0].codec_context.name
            frames = f.streams.video[0].frames
        assert frames == read_timeline(studio.project / "edit.otio").frames
    assert codec == {"played": "flac", "film": "aac"}
    assert (studio.project / "history" / "0002" / "contact.png").is_file()
    assert c.get("/download/film.mp4").content == studio.out.read_bytes()
    assert c.get("/media/film/2.mp4").content == studio.playing(2).read_bytes()


def test_progress_names_the_stage_and_the_clips_encoded(studio):
    edited = SENTENCES[:4] + ["A purple sky glows over the quiet hills."]
    status = studio.wait(post(client(studio), "/api/script", {"text": script_text(edited)}).json()["job"])
    assert status["error"] is None
    assert any(line.startswith("render: clip 1/1 encoded") for line in status["log"]), status["log"]
    assert any("joining 5 clips (1 encoded, 4 from the cache)" in line for line in status["log"])


def test_no_user_text_reaches_a_shell(studio, tmp_path):
    marks = [tmp_path / f"pwned{i}" for i in range(3)]
    hostile = [f'The door opens "; touch {marks[0]} #.',
               f"The sea is calm $(touch {marks[1]}) tonight.",
               f"A field waits `touch {marks[2]}` for the rain."] + SENTENCES[3:]
    status = studio.wait(post(client(studio), "/api/script", {"text": script_text(hostile)}).json()["job"])
    assert status["error"] is None and status["cut"] == 2
    assert not any(m.exists() for m in marks)
    assert f"$(touch {marks[1]})" in (studio.out.with_suffix(".srt")).read_text()


def test_a_shot_asked_to_be_generated_is_generated(studio):
    shot = studio.snapshot()["shots"][2]
    status = studio.wait(post(client(studio), "/api/generate", {"shot": shot["id"]}).json()["job"],
                         timeout=300)
    assert status["error"] is None
    decision = {d.shot_id: d for d in read_timeline(studio.project / "edit.otio").decisions}[shot["id"]]
    assert decision.source == "generated" and decision.library_shot.startswith("generated:")
    shown = client(studio).get("/api/project").json()["shots"][2]
    assert shown["source"] == "generated"
    # the inspector says what the fill is and how it measured (a stand-in: generator was off)
    assert shown["fill"]["kind"] == "stand-in" and float(shown["fill"]["measured"]) != 0.0
    assert shown["fill"]["runner_up"] and shown["fill"]["best_footage"]


def test_a_failing_edit_keeps_the_film_and_the_file(studio):
    film = Path(load_state(studio.project).film)
    stamp = film.stat().st_mtime_ns
    text = studio.script.read_text()
    r = post(client(studio), "/api/script", {"text": "   \n\n  "})
    status = studio.wait(r.json()["job"])
    assert "empty" in status["error"]["message"] and status["cut"] == 1
    assert studio.script.read_text() == text  # the user's file is untouched
    assert film.stat().st_mtime_ns == stamp


def test_pin_trim_ban_generate_and_revert(studio):
    c = client(studio)
    snap = c.get("/api/project").json()
    video = next(s for s in snap["shots"] if s["kind"] == "video")
    shot = c.get(f"/api/shot/{video['id']}").json()
    other = next(x for x in shot["candidates"] if not x["chosen"] and x["kind"] == "video")
    assert studio.wait(post(c, "/api/pin", {"shot": video["id"], "clip": other["clip"]}).json()["job"])["error"] is None
    assert edl_clips(studio.project)[video["id"]][0] == other["clip"]
    assert load_choices(studio.project).pins[video["id"]] == other["clip"]

    _, source_in, _ = edl_clips(studio.project)[video["id"]]
    later = post(c, "/api/trim", {"shot": video["id"], "steps": 1})
    if later.status_code == 400:  # the clip already ends where the shot does: say so, then earlier
        assert "as late as its clip allows" in later.json()["error"]
        later = post(c, "/api/trim", {"shot": video["id"], "steps": -1})
    status = studio.wait(later.json()["job"])
    assert status["error"] is None
    clip, moved, _ = edl_clips(studio.project)[video["id"]]
    assert clip == other["clip"] and moved != source_in  # 0.5 s either way, as the clip allows

    assert studio.wait(post(c, "/api/ban", {"clip": other["clip"]}).json()["job"])["error"] is None
    choices = load_choices(studio.project)
    assert other["clip"] in choices.bans and video["id"] not in choices.pins  # the ban lifts the pin
    assert edl_clips(studio.project)[video["id"]][0] != other["clip"]

    cut = load_state(studio.project).cut
    status = studio.wait(post(c, "/api/revert", {"cut": 1}).json()["job"])
    assert status["error"] is None and status["cut"] == cut + 1
    assert edl_clips(studio.project) == edl_clips(studio.project / "history" / "0001")


def test_settings_are_shown_changed_by_the_api_and_come_back_with_a_revert(studio):
    c = client(studio)
    shown = {x["name"]: x for x in c.get("/api/project").json()["settings"]}
    assert shown["style"]["value"] == "default" and shown["width"]["value"] == 160
    assert shown["threshold"]["value"] == -50.0 and not shown["generator_model"]["editable"]
    for bad, message in (({"style": "nope"}, "unknown style"), ({"colour": 1}, "no setting 'colour'"),
                         ({"top": 0}, "top: 0 is not a value"), ({"music": "/no/such.wav"}, "no such file"),
                         ({}, "no setting to change")):
        r = post(c, "/api/settings", {"settings": bad})
        assert r.status_code == 400 and message in r.json()["error"], (bad, r.json())
    r = post(c, "/api/settings", {"settings": {"style": "calm", "top": 6}})
    status = studio.wait(r.json()["job"])
    assert status["error"] is None and status["cut"] == 2
    state = load_state(studio.project)
    assert (state.settings.style, state.settings.top) == ("calm", 6)
    data = c.get("/api/project").json()
    assert data["history"][-1]["summary"].startswith("settings: style default -> calm, top 10 -> 6; ")
    assert {x["name"]: x["value"] for x in data["settings"]}["style"] == "calm"
    status = studio.wait(post(c, "/api/revert", {"cut": 1}).json()["job"])
    assert status["error"] is None
    assert load_state(studio.project).settings.style == "default"  # the settings came back
    assert "settings: style calm -> default, top 6 -> 10" in c.get("/api/project").json()["history"][-1]["summary"]
    edited = list(SENTENCES)
    edited[0] = "A red door opens very slowly."
    status = studio.wait(post(c, "/api/script", {"text": script_text(edited)}).json()["job"])
    assert status["error"] is None and load_state(studio.project).settings.top == 10
    assert "settings" not in c.get("/api/project").json()["history"][-1]["summary"]


def test_a_candidate_another_shot_holds_is_a_swap(studio):
    c = client(studio)
    snap = c.get("/api/project").json()
    taken = None
    for s in snap["shots"]:
        full = c.get(f"/api/shot/{s['id']}").json()
        taken = next((x for x in full["candidates"] if x["used_by"]), None)
        if taken is not None:
            break
    assert taken is not None
    holder = next(x for x in snap["shots"] if x["id"] == taken["used_by"]["id"])
    assert taken["used_by"]["n"] == holder["n"] and holder["clip"] == taken["clip"]
    status = studio.wait(post(c, "/api/pin", {"shot": s["id"], "clip": taken["clip"]}).json()["job"])
    assert status["error"] is None
    clips = edl_clips(studio.project)
    assert clips[s["id"]][0] == taken["clip"] and clips[holder["id"]][0] != taken["clip"]


def test_revert_brings_the_words_back(studio):
    c = client(studio)
    edited = SENTENCES[:4]
    studio.wait(post(c, "/api/script", {"text": script_text(edited)}).json()["job"])
    assert load_state(studio.project).cut == 2
    status = studio.wait(post(c, "/api/revert", {"cut": 1}).json()["job"])
    assert status["error"] is None
    assert studio.script.read_text() == script_text(SENTENCES)
    data = c.get("/api/project").json()
    assert [s["text"] for s in data["shots"]] == SENTENCES


def test_a_vanished_library_is_reported_and_nothing_is_lost(studio):
    c = client(studio)
    moved = studio.library.with_name("moved-away")
    studio.library.rename(moved)
    try:
        assert c.get("/api/status").json()["library_ok"] is False
        status = studio.wait(post(c, "/api/script", {"text": script_text(SENTENCES[:3])}).json()["job"])
        assert "library is gone" in status["error"]["message"]
        assert load_state(studio.project).cut == 1
        assert c.get("/api/project").status_code == 200
    finally:
        moved.rename(studio.library)
    assert c.get("/api/status").json()["library_ok"] is True


def test_a_socket_server_answers_on_loopback(shared):
    from tests.studiokit import serve_in_thread

    served = serve_in_thread(shared)
    try:
        host, port = served.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Cookie: montage_studio={TOKEN}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and b'"library_ok":true' in reply
    finally:
        served.stop()
