"""Where models live on this machine and which are installed, read from the disk alone.

- The hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``):
  pulled files, in huggingface_hub's own layout, so other tools share them.
- ``$MONTAGE_MODELS_HOME`` (else ``$XDG_DATA_HOME/montage/models``, else
  ``~/.local/share/montage/models``): ``pulled/NAME.json``, the record of each pull (the commit
  and every file's size and hash, as checked when it arrived), and ``NAME/``, a model folder
  placed by hand on a machine without a network (the repository's files at their paths).

Nothing here touches the network: deciding what is installed stats files and reads records,
so an offline start costs milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .entries import Entry

HOME_ENV = "MONTAGE_MODELS_HOME"
RECORD_VERSION = 1


def models_home() -> Path:
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "montage" / "models"


def hub_cache() -> Path:
    """huggingface_hub's cache folder, by its own rules, read now (not at import)."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(key):
            return Path(os.environ[key]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "huggingface" / "hub"


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it: no HTTP call at all."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def record_path(name: str) -> Path:
    return models_home() / "pulled" / f"{name}.json"


def manual_folder(name: str) -> Path:
    """Where a model folder placed by hand is looked for (the files at their repo paths)."""
    return models_home() / name


def repo_folder(repo: str, cache: Path | None = None) -> Path:
    """The hub cache's folder of a model repository (its ``models--org--name`` layout)."""
    return (cache or hub_cache()) / ("models--" + repo.replace("/", "--"))


def snapshot_folder(repo: str, commit: str, cache: Path | None = None) -> Path:
    return repo_folder(repo, cache) / "snapshots" / commit


@dataclass(frozen=True)
class InstalledFile:
    path: str
    size: int
    sha256: str = ""  # LFS files: what the hub's model info gave, checked on arrival
    blob_id: str = ""  # other files: their git blob id, checked on arrival


@dataclass(frozen=True)
class Installed:
    """One model on this machine, ready to load from ``folder``."""

    name: str
    revision: str  # the commit pulled, or "local-<fingerprint>" for a folder placed by hand
    folder: Path
    files: tuple[InstalledFile, ...]
    how: str  # "pulled" or "by hand"
    accepted_licence: bool = False
    pulled_at: str = ""

    @property
    def short(self) -> str:
        """The revision as model names carry it (12 characters of the commit)."""
        return self.revision[:12] if not self.revision.startswith("local") else self.revision

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Status:
    entry: Entry
    installed: Installed | None
    problem: str = ""  # why a record or hand-placed folder does not count as installed


def status(e: Entry) -> Status:
    """Whether ``e`` is installed: a hand-placed folder first, then a pull's record."""
    hand = manual_folder(e.name)
    problem = ""
    if hand.is_dir():
        found, problem = _by_hand(e, hand)
        if found is not None:
            return Status(e, found)
    rec = read_record(e.name)
    if rec is None:
        return Status(e, None, problem)  # (an incomplete hand-placed folder says what it lacks)
    missing = [f.path for f in rec.files
               if not _has_size(rec.folder / f.path, f.size)]
    if missing:
        return Status(e, None, f"{len(missing)} pulled file(s) missing or changed in the hub "
                               f"cache ({missing[0]}{', ...' if len(missing) > 1 else ''}): "
                               f"pull it again")
    if e.revision and rec.revision != e.revision:
        return Status(e, rec, f"pulled at {rec.revision[:12]}, the catalogue now pins "
                              f"{e.revision[:12]}: `montage models pull {e.name}` updates it")
    return Status(e, rec)


def installed(e: Entry) -> Installed | None:
    return status(e).installed


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _by_hand(e: Entry, folder: Path) -> tuple[Installed | None, str]:
    """A folder placed by hand, if it holds every file the entry names (pinned sizes checked;
    pinned hashes are checked by ``montage models check``)."""
    files: list[InstalledFile] = []
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    for spec in e.files:
        hits = [p for p in present if spec.matches(p)]
        if not hits:
            return None, f"the folder placed by hand, {folder}, lacks {spec.path}"
        for p in hits:
            size = (folder / p).stat().st_size
            if spec.size is not None and size != spec.size:
                return None, (f"{folder / p} has {size} bytes, the catalogue pins {spec.size}: "
                              f"copy it again")
            files.append(InstalledFile(p, size, spec.sha256 or ""))
    stamp = "|".join(f"{f.path}:{f.size}:{(folder / f.path).stat().st_mtime_ns}" for f in files)
    fingerprint = hashlib.sha1(stamp.encode()).hexdigest()[:8]
    return Installed(e.name, f"local-{fingerprint}", folder, tuple(files), "by hand",
                     accepted_licence=True), ""


def read_record(name: str) -> Installed | None:
    """What the last pull of ``name`` got ({} when it was never pulled or the record is bad)."""
    path = record_path(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = tuple(InstalledFile(f["path"], int(f["size"]), f.get("sha256") or "",
                                    f.get("blob_id") or "") for f in data["files"])
        folder = snapshot_folder(data["repo"], data["revision"])
        return Installed(data["name"], data["revision"], folder, files, "pulled",
                         bool(data.get("accepted_licence")), data.get("pulled_at", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(e: Entry, commit: str, files: list[InstalledFile], accepted: bool) -> Installed:
    """Record a finished pull (written whole under a temporary name, then renamed)."""
    path = record_path(e.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": RECORD_VERSION, "name": e.name, "kind": e.kind, "repo": e.repo,
            "revision": commit, "pinned": e.revision or None, "endpoint": endpoint(),
            "licence": e.licence, "accepted_licence": accepted,
            "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256 or None,
                       "blob_id": f.blob_id or None} for f in files]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return read_record(e.name)  # type: ignore[return-value]


def forget(name: str) -> None:
    record_path(name).unlink(missing_ok=True)


def remove_by_hand(e: Entry) -> int:
    """Delete a hand-placed folder; the bytes it held."""
    folder = manual_folder(e.name)
    freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder)
    return freed


def free_bytes(folder: Path) -> int:
    """Free space where ``folder`` is (or would be created)."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 0


__all__ = ["HOME_ENV", "Installed", "InstalledFile", "Status", "endpoint", "forget",
           "free_bytes", "hub_cache", "installed", "manual_folder", "models_home", "offline",
           "read_record", "record_path", "remove_by_hand", "repo_folder", "snapshot_folder",
           "status", "write_record"]
