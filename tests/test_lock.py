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
from montage.project import lock as lock_module
from montage.project.lock import GRACE_S, LOCK_FILE, POLL_S
from planner.errors import ProjectError

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from montage.project import project_lock
with project_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    if sys.argv[3] == "stdin":
        sys.stdin.readline()  # until the test says so
    else:
        time.sleep(float(sys.argv[3]))
if sys.argv[3] == "stdin":
    print("released", flush=True)
"""


def hold(project: Path, command: str = "montage make",
         seconds: float | None = 60.0) -> subprocess.Popen:
    """Another real process that takes the project's lock and keeps it ``seconds`` (None: until
    a line comes on its stdin; it then says "released" once it has let go)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    hold_for = "stdin" if seconds is None else str(seconds)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(project), command, hold_for],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


class Clock:
    """The lock's clock in a test: its polls are counted and its waits added up here, so a test
    checks how the lock waited without timing it. ``real``: each poll also sleeps for real (a
    holder in another process needs time to let go); ``on_first_poll``: called once, when the
    lock has been refused and starts to wait."""

    def __init__(self, *, real: bool = False, on_first_poll=None) -> None:
        self.now, self.polls, self.real, self.on_first_poll = 0.0, 0, real, on_first_poll

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.polls += 1
        if self.polls == 1 and self.on_first_poll:
            self.on_first_poll()
        if self.real:
            time.sleep(seconds)
        self.now += seconds

    def __getattr__(self, name: str):
        return getattr(time, name)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_a_second_process_is_refused_with_the_holders_name(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    proc = hold(project, "montage make")
    try:
        who = lock_holder(project)
        assert who is not None and "montage make" in who and f"pid {proc.pid}" in who
        clock = Clock()
        monkeypatch.setattr(lock_module, "time", clock)
        with pytest.raises(ProjectError, match=rf"in use by montage make \(pid {proc.pid} on ") as no:
            with project_lock(project, "montage pin"):
                pytest.fail("took a lock another process holds")
        # no waiting unless asked: only the short grace for another's probe, then the refusal
        # that says how to wait (the holder is still at work: it was not waited for)
        assert clock.now < GRACE_S + POLL_S and "waited" not in no.value.message
        assert "--wait" in no.value.hint and proc.poll() is None
        clock = Clock()
        monkeypatch.setattr(lock_module, "time", clock)
        with pytest.raises(ProjectError, match="waited 0.5 s"):
            with project_lock(project, "montage pin", wait=True, timeout=0.5):
                pytest.fail("took a lock another process holds")
        assert clock.now - POLL_S < 0.5 <= clock.now  # it polled through the timeout, no longer
        assert proc.poll() is None
    finally:
        stop(proc)


def test_a_waiting_writer_gets_the_lock_when_the_holder_finishes(tmp_path, monkeypatch, caplog):
    project = tmp_path / "proj"
    proc = hold(project, "montage make", seconds=None)

    def let_go() -> None:  # the waiter has been refused: now the holder finishes its work
        proc.stdin.write("done\n")
        proc.stdin.flush()

    clock = Clock(real=True, on_first_poll=let_go)
    monkeypatch.setattr(lock_module, "time", clock)
    try:
        with project_lock(project, "montage watch", wait=True, timeout=30):
            assert clock.polls >= 1  # it was refused while the other held it, and waited
            assert "montage watch" in lock_holder(project)
            assert proc.stdout.readline().strip() == "released"
        assert lock_holder(project) is None
        assert proc.wait(timeout=30) == 0  # the holder finished its work undisturbed
        assert not [r for r in caplog.records if "stale" in r.getMessage()]  # a clean handover
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
