"""The model catalogue as data: the shipped ``catalogue.toml`` plus the user's own file.

An entry says which hub repository and revision, which files, under which licence, and what a
machine needs to run it (see the comments at the top of ``catalogue.toml``). The user file
(``$MONTAGE_MODELS_FILE``, else ``$XDG_CONFIG_HOME/montage/models.toml`` or
``~/.config/montage/models.toml``) adds entries or replaces shipped ones by name.
"""
from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from planner.errors import ModelError

SHIPPED = Path(__file__).with_name("catalogue.toml")
USER_FILE_ENV = "MONTAGE_MODELS_FILE"
KINDS = ("embedder", "image", "video", "identity")
LOADERS = {"embedder": ("open_clip",), "image": ("diffusers",), "video": ("diffusers",),
           "identity": ("ip_adapter",)}
NEEDS = ("cpu", "gpu")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class FileSpec:
    """A file (or a glob over the repository's files) an entry needs; ``size`` and ``sha256``
    only where a public source pins them (an exact path only)."""

    path: str
    size: int | None = None
    sha256: str | None = None

    @property
    def is_glob(self) -> bool:
        return any(c in self.path for c in "*?[")

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.path) if self.is_glob else path == self.path


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    loader: str
    repo: str
    revision: str  # a pinned commit, or "" (resolved at the first pull)
    files: tuple[FileSpec, ...]
    licence: str
    purpose: str
    licence_url: str = ""
    commercial: bool = True  # False: pull asks first, auto never picks it
    needs: str = "cpu"  # "cpu": runs on a CPU; "gpu": recommended, auto only with a GPU
    vram_gb: float = 0.0
    approx_bytes: int = 0
    dim: int = 0  # embedders: the vector size
    family: str = ""  # image models: e.g. "sd15"
    works_with: str = ""  # identity adapters: the image family they fit
    rank: int = 0
    settings: dict = field(default_factory=dict, hash=False, compare=False)
    source: str = "catalogue"  # "catalogue" or the user file that defined it

    @property
    def pinned(self) -> bool:
        return bool(self.revision)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "loader": self.loader, "repo": self.repo,
                "revision": self.revision or None, "licence": self.licence,
                "licence_url": self.licence_url, "commercial": self.commercial,
                "needs": self.needs, "vram_gb": self.vram_gb, "approx_bytes": self.approx_bytes,
                "dim": self.dim or None, "family": self.family or None,
                "works_with": self.works_with or None, "purpose": self.purpose,
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256}
                          for f in self.files],
                "settings": dict(self.settings), "source": self.source}


def user_file() -> Path:
    """Where the user's catalogue additions live (the file need not exist)."""
    if os.environ.get(USER_FILE_ENV):
        return Path(os.environ[USER_FILE_ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "montage" / "models.toml"


def catalogue() -> dict[str, Entry]:
    """Every entry by name: the shipped ones, then the user file's (which replace by name)."""
    path = user_file()
    try:
        stamp = path.stat().st_mtime_ns if path.is_file() else None
    except OSError:
        stamp = None
    return dict(_load(str(path), stamp))


@lru_cache(maxsize=4)
def _load(user: str, stamp: int | None) -> tuple[tuple[str, Entry], ...]:
    entries = {e.name: e for e in _read(SHIPPED, "catalogue")}
    if stamp is not None:
        entries.update({e.name: e for e in _read(Path(user), user)})
    return tuple(entries.items())


def entry(name: str) -> Entry:
    """The entry called ``name``; a ModelError listing the catalogue otherwise."""
    found = catalogue().get((name or "").strip())
    if found is None:
        raise ModelError(f"unknown model {name!r}",
                         hint="the catalogue has: " + ", ".join(sorted(catalogue()))
                              + " (montage models list; add your own in " + str(user_file()) + ")")
    return found


def _read(path: Path, source: str) -> list[Entry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the model catalogue {path}: {exc}",
                         hint="fix or remove the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: not valid TOML ({exc})",
                         hint="see catalogue.toml in montage's retrieval/models/ for the layout") from None
    models = data.get("model", [])
    if not isinstance(models, list):
        raise ModelError(f"{path}: 'model' must be a list of [[model]] tables",
                         hint="write each entry as [[model]] with name, kind, repo, ...")
    return [_entry(path, n, raw, source) for n, raw in enumerate(models, 1)]


def _entry(path: Path, n: int, raw: dict, source: str) -> Entry:
    where = f"{path}: [[model]] number {n}"

    def bad(what: str, hint: str = "see the comments at the top of montage's catalogue.toml"):
        return ModelError(f"{where} ({raw.get('name', '?')}): {what}", hint=hint)

    def text(key: str, required: bool = True) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise bad(f"'{key}' must be a non-empty string")
        return value.strip()

    name, kind = text("name"), text("kind")
    if not _NAME.match(name):
        raise bad("a name is lower-case letters, digits, '.', '-' and '_'")
    if kind not in KINDS:
        raise bad(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    loader, repo = text("loader"), text("repo")
    if loader not in LOADERS[kind]:
        raise bad(f"a {kind} loads with {' or '.join(LOADERS[kind])}, not {loader!r}")
    if not _REPO.match(repo):
        raise bad(f"repo {repo!r} is not a hub id such as org/name")
    revision = text("revision", required=False)
    if revision and not _COMMIT.match(revision):
        raise bad(f"revision {revision!r} is not a commit (40 lower-case hex digits)",
                  hint="pin a commit, or leave revision empty to resolve it at the first pull")
    needs = text("needs", required=False) or "cpu"
    if needs not in NEEDS:
        raise bad(f"needs {needs!r} is not one of {', '.join(NEEDS)}")
    files = []
    for f in raw.get("files", []):
        if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not f["path"].strip():
            raise bad("each [[model.files]] needs a path")
        spec = FileSpec(f["path"].strip().lstrip("/"), f.get("size"), f.get("sha256"))
        if spec.is_glob and (spec.size is not None or spec.sha256):
            raise bad(f"{spec.path}: a glob cannot pin a size or sha256")
        if spec.size is not None and (not isinstance(spec.size, int) or spec.size < 0):
            raise bad(f"{spec.path}: size must be a whole number of bytes")
        if spec.sha256 is not None and not _SHA256.match(str(spec.sha256)):
            raise bad(f"{spec.path}: sha256 must be 64 lower-case hex digits")
        if ".." in Path(spec.path).parts:
            raise bad(f"{spec.path}: a file path stays inside the repository")
        files.append(spec)
    if not files:
        raise bad("an entry names at least one file ([[model.files]] path = ...)")
    settings = raw.get("settings", {})
    if not isinstance(settings, dict):
        raise bad("[model.settings] must be a table")
    dim = raw.get("dim", 0)
    if kind == "embedder" and (not isinstance(dim, int) or dim <= 0):
        raise bad("an embedder states its vector size: dim = 512")
    try:
        return Entry(name=name, kind=kind, loader=loader, repo=repo, revision=revision,
                     files=tuple(files), licence=text("licence"), purpose=text("purpose"),
                     licence_url=text("licence_url", required=False),
                     commercial=bool(raw.get("commercial", True)), needs=needs,
                     vram_gb=float(raw.get("vram_gb", 0.0)),
                     approx_bytes=int(raw.get("approx_bytes", 0)), dim=int(dim or 0),
                     family=text("family", required=False),
                     works_with=text("works_with", required=False), rank=int(raw.get("rank", 0)),
                     settings=dict(settings), source=source)
    except (TypeError, ValueError) as exc:
        raise bad(f"a number field is not a number ({exc})") from None


__all__ = ["Entry", "FileSpec", "KINDS", "SHIPPED", "USER_FILE_ENV", "catalogue", "entry",
           "user_file"]
