"""What a render keeps between runs besides its clips: what ffmpeg said of each source, and
which film the last render joined, so an unchanged recut copies that film instead of joining
every clip again (half a second for the demo, more for a long film).

Both live in the render cache folder as small JSON files written atomically; a file that
cannot be read is treated as empty (it only costs the work it saved).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from retrieval.media import Look, MediaInfo, media_info
from montage.film.soundtrack import Soundtrack

PROBES = "probes.json"
LAST_FILM = "last-film.json"
FORMAT = 1


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == FORMAT else {}


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({**data, "format": FORMAT}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a cache that cannot be written only costs time next run
        tmp.unlink(missing_ok=True)


def _version(path: Path) -> str:
    st = path.stat()
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def read_probes(cache: Path) -> dict:
    """Known probe results, by file version (path, size, mtime)."""
    return dict(_read(cache / PROBES).get("files", {}))


def write_probes(cache: Path, known: dict) -> None:
    _write(cache / PROBES, {"files": known})


def probe_known(media: Path, known: dict, kind: str = "video") -> MediaInfo:
    """``media_info(media, kind)``, answered from ``known`` when this version of the file was
    probed before as this kind (and added to it when not)."""
    version = _version(media) + ("|still" if kind == "still" else "")
    entry = known.get(version)
    if isinstance(entry, dict) and "look" in entry:  # (entries before looks: probed again)
        try:
            return MediaInfo(int(entry["width"]), int(entry["height"]), bool(entry["has_audio"]),
                             Look.from_dict(entry["look"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    info = media_info(media, kind)
    known[version] = {**asdict(info), "look": info.look.to_dict()}
    return info


def film_key(clip_files: list[str], sound: Soundtrack | None) -> str:
    """Everything that decides a joined film: its clips' cache names, which already hash each
    clip's source, range and encoding, in order, and the narration and music with their files'
    versions."""
    media = []
    if sound is not None:
        paths = [line.path for line in sound.lines] + [sound.music]
        media = [_version(Path(p)) if p and Path(p).is_file() else str(p) for p in paths]
    fields = [clip_files, repr(sound), media]
    return hashlib.sha1(json.dumps(fields, default=str).encode()).hexdigest()


def remember_film(cache: Path, key: str, film: Path) -> None:
    """Note the film just written for ``key`` (its size and time identify it after the
    project renames it into place)."""
    st = film.stat()
    _write(cache / LAST_FILM, {"key": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def reusable_film(cache: Path, key: str, film: Path) -> bool:
    """True when ``film`` is the one the last render joined for ``key``, untouched since."""
    last = _read(cache / LAST_FILM)
    try:
        st = film.stat()
    except OSError:
        return False
    return (last.get("key") == key and last.get("size") == st.st_size
            and last.get("mtime_ns") == st.st_mtime_ns)
