"""Which installed model ``auto`` takes, and which one to suggest pulling.

The rule, stated once for embedders and generators alike: among the installed models of the
kinds asked for whose licence allows any use, those that run here (a CPU model anywhere, a
GPU model only where a GPU is usable), the highest ``rank`` in the catalogue wins. A model
with a non-commercial licence is never taken by ``auto`` (the user names it); it is mentioned.
Nothing here touches the network, and the GPU test (which may import torch) is asked only when
an installed GPU model would otherwise win.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .entries import Entry, catalogue
from .store import Installed, status


@dataclass(frozen=True)
class Pick:
    entry: Entry
    installed: Installed


def gpu_driver_present() -> bool:
    """An NVIDIA driver on this machine (read from /proc and /dev, no library imported);
    ``MONTAGE_DEVICE=cpu`` says no."""
    if os.environ.get("MONTAGE_DEVICE", "").strip().lower() == "cpu":
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    return Path("/dev/nvidia0").exists()


def best_installed(kinds: tuple[str, ...], gpu: Callable[[], bool]) -> Pick | None:
    """The installed model ``auto`` takes among ``kinds`` (None: none fits)."""
    found = []
    for e in catalogue().values():
        if e.kind not in kinds or not e.commercial:
            continue
        st = status(e)
        if st.installed is not None:
            found.append(Pick(e, st.installed))
    found.sort(key=lambda p: (-p.entry.rank, p.entry.name))
    gpu_ok: bool | None = None
    for p in found:
        if p.entry.needs == "gpu":
            if gpu_ok is None:
                gpu_ok = bool(gpu())
            if not gpu_ok:
                continue
        return p
    return None


def installed_not_taken(kinds: tuple[str, ...]) -> list[Entry]:
    """Installed models of ``kinds`` that ``auto`` never takes (their licence)."""
    return [e for e in catalogue().values()
            if e.kind in kinds and not e.commercial and status(e).installed is not None]


def suggestion(kinds: tuple[str, ...], gpu: bool) -> Entry | None:
    """The model to suggest pulling: the best-ranked one of ``kinds`` that runs here, with a
    licence ``auto`` may use."""
    usable = [e for e in catalogue().values()
              if e.kind in kinds and e.commercial and (gpu or e.needs == "cpu")]
    usable.sort(key=lambda e: (-e.rank, e.name))
    return usable[0] if usable else None


__all__ = ["Pick", "best_installed", "gpu_driver_present", "installed_not_taken", "suggestion"]
