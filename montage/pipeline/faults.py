"""Fault tests' hooks into a run: SIGKILL this process at a named stage (``MONTAGE_TEST_STOP_AT``).

Used by tests/test_kill.py to prove that a kill at any moment leaves the previous cut, or the
new one, whole."""
from __future__ import annotations

import os
import signal
from typing import Callable

STOP_AT = "MONTAGE_TEST_STOP_AT"  # tests: kill -9 this process at a named stage


def stop_at(stage: str) -> None:
    """SIGKILL ourselves at ``stage`` when asked: indexed, solved, joining, state (the new cut
    written, its state not yet), committed (the state, not yet the film)."""
    if os.environ.get(STOP_AT) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def stop_after_clips() -> Callable[[str], None] | None:
    """A render progress listener that SIGKILLs us after N clips are encoded (``encoded:N``)
    or as the join starts (``joining``); None when no stop is asked."""
    stage = os.environ.get(STOP_AT, "")
    if stage.startswith("encoded:"):
        n = int(stage.split(":", 1)[1])
        return lambda text: os.kill(os.getpid(), signal.SIGKILL) \
            if text.startswith(f"render: clip {n}/") else None
    if stage == "joining":
        return lambda text: stop_at("joining") if text.startswith("render: joining") else None
    return None
