"""Read pictures: Pillow for the common formats (AVIF natively since Pillow 11.3), pillow-heif
for HEIC/HEIF (iPhone photos), rawpy (LibRaw) for camera RAW. The one module that imports
pillow_heif and rawpy; every picture comes out as upright RGB uint8.

RAW files are developed at half size with the camera's white balance: the index keeps
keyframes of at most 720 px and a film frame is at most a few thousand pixels wide, while a
full demosaic of a 24 MP sensor costs several times as long (measured in docs/footage.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .library import UNREADABLE, UNSUPPORTED, SkippedMedia, is_raw

_HINT = "re-export or remove the file"
_heif_registered = False
# Pillow formats that are not pictures it can decode (it only reads their headers)
_NOT_PICTURES = frozenset({"MPEG", "EPS", "PDF"})


def _register_heif() -> bool:
    """Teach Pillow HEIC/HEIF once; False when pillow-heif is not installed."""
    global _heif_registered
    if not _heif_registered:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            return False
        register_heif_opener()
        _heif_registered = True
    return True


def identify(path: Path) -> tuple[str, int] | None:
    """(Pillow's format name, frame count) of a picture Pillow can read, else None. Reads the
    header only."""
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    try:
        with Image.open(path) as img:
            if img.format in _NOT_PICTURES:
                return None
            return str(img.format), int(getattr(img, "n_frames", 1) or 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def read_picture(path: Path) -> np.ndarray:
    """A picture file as an RGB uint8 array, turned upright by its EXIF orientation (HEIF
    pictures are turned by libheif, which then clears the tag)."""
    path = Path(path)
    if is_raw(path.name):
        return _read_raw(path)
    from PIL import Image, ImageOps, UnidentifiedImageError

    heif = _register_heif()
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"))
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in (".heic", ".heif") and not heif:
            raise SkippedMedia(f"cannot read {path}: HEIC/HEIF pictures need pillow-heif",
                               "pip install pillow-heif", why=UNSUPPORTED) from exc
        raise SkippedMedia(f"cannot read {path}: not a readable image ({exc})", _HINT,
                           why=UNREADABLE) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise SkippedMedia(f"cannot read {path}: not a readable image ({exc})", _HINT,
                           why=UNREADABLE) from exc


def _read_raw(path: Path) -> np.ndarray:
    """A camera RAW developed by LibRaw at half size (camera white balance, sRGB, 8 bits),
    turned upright by the orientation LibRaw reads (its ``flip``, applied by postprocess)."""
    try:
        import rawpy
    except ImportError as exc:
        raise SkippedMedia(f"cannot read {path}: camera RAW needs rawpy", "pip install rawpy",
                           why=UNSUPPORTED) from exc
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8,
                                  no_auto_bright=False)
    except rawpy.LibRawFileUnsupportedError as exc:
        raise SkippedMedia(f"cannot read {path}: LibRaw does not support this RAW format ({exc})",
                           "convert it to DNG or TIFF", why=UNSUPPORTED) from exc
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise SkippedMedia(f"cannot read {path}: not a readable camera RAW ({exc})", _HINT,
                           why=UNREADABLE) from exc
    return np.ascontiguousarray(rgb)


def write_png(image: np.ndarray, out: Path) -> Path:
    """``image`` (RGB uint8) as a quickly compressed PNG, for ffmpeg to read."""
    from PIL import Image

    Image.fromarray(image).save(out, format="PNG", compress_level=1)
    return out
