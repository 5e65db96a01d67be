"""Light, colour and sky words measured from pixels, and the query words that ask for them.

ImageNet's classes say what things are, not how the picture looks: a query for "a dark
scene", "something red" or "a sunny day with a blue sky" gets nothing from them. These facts
are measured on a small copy of the frame (HSV), each as a score in 0..1 (``attributes``);
:func:`asked` reads the same attributes from a query's words. The people attributes come
from :mod:`retrieval.analysis.people` and the indexer's face and people detectors.
"""
from __future__ import annotations

import numpy as np

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "white",
           "black", "grey")
LIGHT = ("dark", "bright", "night", "monochrome", "colourful", "blue_sky", "grey_sky")
PEOPLE = ("person", "people", "crowd", "face")
ATTRIBUTES = PEOPLE + LIGHT + COLOURS

# query word (a lemma) -> the attributes it asks for
WORDS: dict[str, tuple[str, ...]] = {
    **{c: (c,) for c in COLOURS},
    "gray": ("grey",), "golden": ("yellow",), "gold": ("yellow",), "violet": ("purple",),
    "colourful": ("colourful",), "colorful": ("colourful",), "vivid": ("colourful",),
    "rainbow": ("colourful",), "multicoloured": ("colourful",), "multicolored": ("colourful",),
    "dark": ("dark",), "dim": ("dark",), "shadowy": ("dark",), "gloomy": ("dark",),
    "night": ("night", "dark"), "nighttime": ("night", "dark"), "starry": ("night", "dark"),
    "midnight": ("night", "dark"), "dusk": ("dark",), "twilight": ("dark",),
    "evening": ("dark",), "sunset": ("dark", "orange"),
    "bright": ("bright",), "brightly": ("bright",), "sunny": ("bright", "blue_sky"),
    "sunlit": ("bright",), "daylight": ("bright",), "sunshine": ("bright", "blue_sky"),
    "overcast": ("grey_sky",), "cloudy": ("grey_sky",), "monochrome": ("monochrome",),
    "people": ("person", "people"), "crowd": ("person", "people", "crowd"),
    "audience": ("person", "people", "crowd"), "spectator": ("person", "people", "crowd"),
    "pedestrian": ("person",), "someone": ("person",), "somebody": ("person",),
    "family": ("person", "people"), "team": ("person", "people"),
    "face": ("person", "face"), "portrait": ("person", "face"), "headshot": ("person", "face"),
}
_NUMBERS = frozenset("two three four five several many group couple pair".split())


def asked(words: list[tuple[str, str]], person: bool = False) -> dict[str, float]:
    """The attributes a query asks for, from its (lemma, part of speech) pairs.

    ``person``: the query names a person (a WordNet noun under person.n.01, from
    :mod:`retrieval.embed.wordnet`). "black and white" asks for a grey picture, not for black and
    white things; "orange" asks for the colour only as an adjective (the fruit is a class).
    """
    lemmas = [w for w, _ in words]
    out: dict[str, float] = {}
    mono = "black" in lemmas and "white" in lemmas
    for lemma, pos in words:
        if mono and lemma in ("black", "white"):
            out["monochrome"] = 1.0
            continue
        if lemma == "orange" and pos != "ADJ":
            continue
        if lemma == "sky" and "blue" in lemmas:
            out["blue_sky"] = 1.0
        if lemma == "sky" and ("grey" in lemmas or "gray" in lemmas):
            out["grey_sky"] = 1.0
        for a in WORDS.get(lemma, ()):
            out[a] = 1.0
    if person or "person" in out:
        out["person"] = 1.0
        if any(w in _NUMBERS for w in lemmas):
            out["people"] = 1.0
    if "close" in lemmas and ("up" in lemmas or "person" in out):
        out["face"] = 1.0
    return out


def _hsv(image: np.ndarray, side: int = 64) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8)[..., :3]).convert("RGB")
    img = img.resize((side, side), Image.Resampling.BILINEAR).convert("HSV")
    return np.asarray(img, dtype=np.float32) / 255.0


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def light_and_colour(image: np.ndarray) -> dict[str, float]:
    """Scores in 0..1 for LIGHT and COLOURS, from a 64x64 HSV copy of the frame."""
    hsv = _hsv(image)
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    luma = float(v.mean())
    sat = float(s.mean())
    vivid = (s > 0.35) & (v > 0.25)

    def hue(lo: float, hi: float) -> np.ndarray:
        return vivid & ((h >= lo) & (h < hi) if lo < hi else (h >= lo) | (h < hi))

    shares = {
        "red": hue(340, 12), "orange": hue(12, 40) & (v > 0.55), "yellow": hue(40, 70),
        "green": hue(70, 165), "blue": hue(165, 255), "purple": hue(255, 300),
        "pink": hue(300, 340), "brown": hue(5, 45) & (v <= 0.55),
        "white": (s < 0.15) & (v > 0.85), "black": v < 0.15,
        "grey": (s < 0.12) & (v >= 0.15) & (v <= 0.85),
    }
    out = {name: _clip(float(mask.mean()) / 0.3) for name, mask in shares.items()}
    top = slice(0, hsv.shape[0] // 3)
    sky_blue = hue(180, 250)[top] & (v[top] > 0.5)
    sky_grey = (s[top] < 0.15) & (v[top] > 0.55)
    hues = sum(1 for c in ("red", "orange", "yellow", "green", "blue", "purple", "pink")
               if float(shares[c].mean()) > 0.04)
    out.update({
        "dark": _clip((0.38 - luma) / 0.25), "bright": _clip((luma - 0.55) / 0.3),
        "night": _clip((0.3 - luma) / 0.2), "monochrome": _clip((0.1 - sat) / 0.08),
        "colourful": _clip((hues - 1) / 3), "blue_sky": _clip(float(sky_blue.mean()) / 0.5),
        "grey_sky": _clip(float(sky_grey.mean()) / 0.6),
    })
    return out
