"""The project lock: one writer per project folder, across processes; re-entrant within one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from montage.cli import main
from montage.project import lock_holder, project_lock
from montage.project.lock import LOCK_FILE
from planner.errors import ProjectError

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from montage.project import project_lock
with project_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(project: Path, command: str = "montage make", seconds: float = 60.0) -> subprocess.Popen:
    """Another real process that takes the project's lock and keeps it ``seconds``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(project), command, str(seconds)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_a_second_process_is_refused_with_the_holders_name(tmp_path):
    project = tmp_path / "proj"
    proc = hold(project, "montage make")
    try:
        who = lock_holder(project)
        assert who is not None and "montage make" in who and f"pid {proc.pid}" in who
        started = time.monotonic()
        with pytest.raises(ProjectError, match=rf"in use by montage make \(pid {proc.pid} on "):
            with project_lock(project, "montage pin"):
                pytest.fail("took a lock another process holds")
        assert time.monotonic() - started < 2  # no waiting unless asked
        started = time.monotonic()
        with pytest.raises(ProjectError, match="waited 0.5 s"):
            with project_lock(project, "montage pin", wait=True, timeout=0.5):
                pytest.fail("took a lock another process holds")
        assert 0.5 <= time.monotonic() - started < 3
    finally:
        stop(proc)


def test_a_waiting_writer_gets_the_lock_when_the_holder_finishes(tmp_path):
    project = tmp_path / "proj"
    proc = hold(project, "montage make", seconds=1.0)
    try:
        started = time.monotonic()
        with project_lock(project, "montage watch", wait=True, timeout=30):
            assert time.monotonic() - started >= 0.3  # it did wait for the other
            assert "montage watch" in lock_holder(project)
        assert lock_holder(project) is None
        assert proc.wait(timeout=30) == 0  # the holder finished its work undisturbed
    finally:
        stop(proc)


def test_a_lock_left_by_a_killed_process_is_stale(tmp_path, caplog):
    """kill -9: the kernel drops the flock; the file still names the dead holder, and the next
    writer takes over, saying so."""
    project = tmp_path / "proj"
    proc = hold(project, "montage make")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    left = json.loads((project / LOCK_FILE).read_text())
    assert left["pid"] == proc.pid and left["command"] == "montage make"
    assert lock_holder(project) is None
    with project_lock(project, "montage make"):
        pass
    warned = [r.getMessage() for r in caplog.records if "stale lock" in r.getMessage()]
    assert len(warned) == 1 and f"pid {proc.pid} is no longer running" in warned[0]
    assert (project / LOCK_FILE).read_text() == ""  # a clean release: nothing stale next time
    caplog.clear()
    with project_lock(project, "montage make"):
        pass
    assert not [r for r in caplog.records if "stale" in r.getMessage()]


def test_the_lock_is_reentrant_within_one_process_and_across_threads(tmp_path):
    """The studio holds the lock for its life and cuts from another thread inside it."""
    project = tmp_path / "proj"
    with project_lock(project, "montage studio"):
        entered = []

        def cut():
            with project_lock(project / ".." / "proj", "montage make"):  # same folder, other path
                entered.append(lock_holder(project))

        thread = threading.Thread(target=cut)
        thread.start()
        thread.join(timeout=10)
        assert entered and "montage studio" in entered[0]
        # still held after the nested release: another process is refused
        code = subprocess.run([sys.executable, "-c", HOLD, str(project), "other", "0"],
                              env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=60)
        assert code.returncode != 0 and "in use by montage studio" in code.stderr
    # released when the outer hold ends: another process gets it
    code = subprocess.run([sys.executable, "-c", HOLD, str(project), "other", "0"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert code.returncode == 0 and code.stdout.strip() == "held"


def test_cli_writers_are_refused_while_another_holds_the_project(tmp_path, capsys):
    """make, pin and revert on a project another process is writing: one error line naming it,
    exit 2, nothing written."""
    from tests.conftest import make_still

    lib = tmp_path / "lib"
    make_still(lib / "card.png")
    script = tmp_path / "s.txt"
    script.write_text("A checkered card waits.")
    project, out = tmp_path / "proj", tmp_path / "film.mp4"
    proc = hold(project, "montage make")
    try:
        for argv in (["make", str(script), "--library", str(lib), "--out", str(out),
                      "--project", str(project), "--quiet", "--size", "64x36"],
                     ["ban", str(project), "card.png#0"],
                     ["make", str(script), "--library", str(lib), "--out", str(out),
                      "--project", str(project), "--quiet", "--size", "64x36", "--wait", "0.3"]):
            capsys.readouterr()
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: the project ") and f"montage make (pid {proc.pid}" in err
            assert "Traceback" not in err
        assert not out.exists() and not (project / "state.json").exists()
        assert not (project / "project.toml").exists()
    finally:
        stop(proc)
    assert main(["make", str(script), "--library", str(lib), "--out", str(out),
                 "--project", str(project), "--quiet", "--size", "64x36"]) == 0
    assert out.is_file() and lock_holder(project) is None
