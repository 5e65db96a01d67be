"""``--embedder auto``: the best installed embedder for this machine, said in one line.

The rule is ``retrieval.models.choose``'s (installed, licence allows any use, runs here,
highest catalogue rank); with no CLIP installed it is the offline proxy (proxy-v4), exactly
what montage used before. The line names the choice and the next step. Nothing here touches
the network: what is installed is read from the disk, so an offline start stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import PROXY_NAME

AUTO = "auto"
KINDS = ("embedder",)


@dataclass(frozen=True)
class Choice:
    """What an ``auto`` (or a named) embedder resolved to, and the line that says so."""

    spec: str  # what make_embedder takes
    line: str  # e.g. "retrieval: proxy-v4 (offline); `montage models pull clip-vit-b32` for CLIP"
    auto: bool = False  # chosen by the rule, not named by the user


def cuda_usable() -> bool:
    """A GPU torch can use: the driver is looked for first (no import), then torch is asked."""
    from retrieval.models import gpu_driver_present

    if not gpu_driver_present():
        return False
    from .device import resolve_device

    try:
        return resolve_device("auto").startswith("cuda")
    except Exception:  # noqa: BLE001 - a broken CUDA setup is "no GPU" for the choice
        return False


def auto_embedder() -> Choice:
    """The embedder ``auto`` takes here, with its announcement."""
    from retrieval.models import best_installed, gpu_driver_present, suggestion

    pick = best_installed(KINDS, cuda_usable)
    gpu = gpu_driver_present()
    better = suggestion(KINDS, gpu)
    if pick is None:
        if better is None:
            return Choice("proxy", f"retrieval: {PROXY_NAME} (offline)", auto=True)
        return Choice("proxy", f"retrieval: {PROXY_NAME} (offline, no CLIP installed); "
                               f"`montage models pull {better.name}` for CLIP "
                               f"({_size(better.approx_bytes)})", auto=True)
    e = pick.entry
    line = f"retrieval: {e.name}@{pick.installed.short} ({e.purpose.split(':')[0]})"
    if better is not None and better.rank > e.rank:
        line += f"; `montage models pull {better.name}` for better retrieval on this machine"
    return Choice(e.name, line, auto=True)


def resolve_embedder(spec: str | None) -> Choice:
    """``auto`` (or nothing) by the rule; any other name as it is."""
    key = (spec or AUTO).strip()
    if key == AUTO:
        return auto_embedder()
    return Choice(key, f"retrieval: {key}")


def _size(n: int) -> str:
    return f"about {n / 1e9:.1f} GB" if n >= 1e8 else f"about {n / 1e6:.0f} MB"


__all__ = ["AUTO", "Choice", "auto_embedder", "cuda_usable", "resolve_embedder"]
