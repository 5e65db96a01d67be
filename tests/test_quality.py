"""proxy-v4's parts on real weights: WordNet's class mass, mediapipe's people, light and colour,
neutral file names, and the query checks."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from retrieval.media.library import name_words
from retrieval.media.decode import read_still
from retrieval.embed.proxy3 import label_names
from retrieval.search.queries import QueryError, check_query
from retrieval.analysis.scene import ATTRIBUTES, asked, light_and_colour

SKIMAGE_DATA = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module")
def v4(model_cache):
    from retrieval.embed.proxy4 import ConceptEmbedder

    return ConceptEmbedder(cache_dir=model_cache, threads=1)


@pytest.fixture(scope="module")
def stills() -> dict[str, np.ndarray]:
    return {n: read_still(SKIMAGE_DATA / f"{n}.png") for n in ("chelsea", "coffee", "astronaut")}


def test_wordnet_nouns_cover_every_class_under_them() -> None:
    from retrieval.embed.wordnet import concepts

    names = label_names()
    dog = concepts(["dog"])
    assert len(dog.classes) > 100 and names.index("Pekingese") in dog.classes
    assert names.index("tabby cat") not in dog.classes and not dog.person
    assert concepts(["puppies"]).classes == dog.classes  # no class of its own: its parent's
    assert names.index("orange") in concepts(["fruit"]).classes
    assert concepts(["cyclist"]).person and concepts(["hand"]).person
    assert concepts(["photo", "background"]).classes == frozenset()  # words for the picture


def test_mediapipe_finds_the_astronauts_face_and_not_one_in_coffee(stills) -> None:
    from retrieval.analysis.people import detect

    astronaut = detect(stills["astronaut"])
    assert astronaut.faces == 1 and astronaut.face_score > 0.8
    assert 0.1 < astronaut.face_height < 0.4 and astronaut.mask_share > 0.2
    assert detect(stills["coffee"]).faces == 0


def test_v4_takes_the_people_facts_the_analysis_measured(v4, tmp_path) -> None:
    """The indexer's workers measure mediapipe's people facts once per keyframe; the embedder
    takes them instead of running the models again, and gets the same vectors."""
    import shutil

    from retrieval.analysis.analyse import Settings, analyse_file
    from retrieval.analysis.people import PeopleFacts

    shutil.copy(SKIMAGE_DATA / "astronaut.png", tmp_path / "a.png")
    a = analyse_file(str(tmp_path), "a.png", "still", Settings(27.0, 0.4))
    assert len(a.facts) == len(a.frames) == 1 and a.facts[0].faces == 1
    own = v4.analyse(list(a.frames), [""])
    given = v4.analyse(list(a.frames), [""], facts=list(a.facts))
    assert np.array_equal(own.vectors, given.vectors)
    nobody = v4.analyse(list(a.frames), [""], facts=[PeopleFacts()])
    assert not np.allclose(own.vectors, nobody.vectors)  # the facts are used, not ignored
    with pytest.raises(ValueError, match="people facts"):
        v4.analyse(list(a.frames), [""], facts=[])


def test_light_and_colour_are_measured_and_asked_for() -> None:
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 220
    night = np.full((48, 64, 3), 12, np.uint8)
    grey = np.full((48, 64, 3), 128, np.uint8)
    r, n, g = light_and_colour(red), light_and_colour(night), light_and_colour(grey)
    assert r["red"] == 1.0 and r["blue"] == 0.0 and r["monochrome"] == 0.0
    assert n["dark"] == 1.0 and n["night"] == 1.0 and n["black"] == 1.0 and r["night"] < 1.0
    assert g["monochrome"] == 1.0 and g["grey"] == 1.0
    assert asked([("black", "ADJ"), ("and", "CCONJ"), ("white", "ADJ"), ("photo", "NOUN")]) \
        == {"monochrome": 1.0}
    assert asked([("an", "DET"), ("orange", "NOUN")]) == {}  # the fruit, not the colour
    assert asked([("two", "NUM"), ("man", "NOUN")], person=True) == {"person": 1.0, "people": 1.0}


def test_v4_scores_class_mass_people_and_colour(v4, stills) -> None:
    from retrieval.embed.proxy4 import DIM

    red = np.zeros((96, 128, 3), np.uint8)
    red[..., 0] = 220
    images = [stills["chelsea"], stills["coffee"], stills["astronaut"], red]
    vectors = v4.embed_images(images, [""] * 4)
    assert vectors.shape == (4, DIM) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    queries = ["an animal", "a drink", "a person", "something red"]
    sims = v4.embed_queries(queries) @ vectors.T
    assert np.argmax(sims[0]) == 0 and np.argmax(sims[1]) == 1
    assert np.argmax(sims[2]) == 2 and np.argmax(sims[3]) == 3
    # the class mass adds to "an animal": switch it off and the margin shrinks by about beta
    # (the cat's probability mass under animal.n.01 is close to 1, the coffee's close to 0)
    parts = v4.read_queries(["an animal"])
    assert len(parts[0].classes) > 300 and parts[0].attributes == {}
    from retrieval.embed.proxy4 import MIX, with_mix

    no_mass = with_mix(v4, beta=0.0).query_vectors(parts) @ vectors.T
    assert sims[0, 0] - sims[0, 1] > no_mass[0, 0] - no_mass[0, 1] + 0.8 * MIX.beta
    assert len(ATTRIBUTES) == DIM - 384 - 1000 - 1


def test_v4_keeps_the_raw_measurements_so_weights_can_be_changed_without_the_models(v4, stills):
    """The tuning script re-weighs cached frames: the Mix applied to the kept measurements
    gives the attributes the embedder computed, and another Mix gives other ones."""
    from retrieval.embed.proxy4 import with_mix

    signals = v4.signals([stills["astronaut"], stills["coffee"]], [(("a person", 1.0),), ()])
    again = v4.reweigh(signals)
    for s, a in zip(signals, again):
        assert np.array_equal(s.attributes, a.attributes) and s.hints == a.hints
    assert signals[0].facts.faces == 1 and signals[1].facts.faces == 0
    person = ATTRIBUTES.index("person")
    no_mask = with_mix(v4, mask_weight=0.0).reweigh(signals)
    assert signals[1].attributes[person] > 0.0 and no_mask[1].attributes[person] == 0.0


def test_v4_weighs_people_and_light_or_colour_words_apart(v4):
    """"a red car" asks for a colour (gamma_scene), "a man" for a person (gamma): two weights,
    so noisy people detectors need not drown reliable pixel facts (tuned apart)."""
    from retrieval.embed.proxy4 import C_ATTR, N_CLASSES, with_mix
    from retrieval.embed.text import DIM as TEXT_DIM

    parts = v4.read_queries(["something red", "a man"])
    red, man = ATTRIBUTES.index("red"), ATTRIBUTES.index("person")
    q = with_mix(v4, gamma=0.1, gamma_scene=0.3).query_vectors(parts)[:, TEXT_DIM + N_CLASSES:]
    assert q[0, red] == pytest.approx(0.3 / C_ATTR) and q[0, man] == 0.0
    assert q[1, man] == pytest.approx(0.1 / C_ATTR) and q[1, red] == 0.0


def test_neutral_file_names_give_no_words() -> None:
    assert name_words("stills/img_eb841e82.png") == []
    assert name_words("videos/vid_30f83b95.avi") == []
    assert name_words("DJI_0042.MP4") == [] and name_words("C0012.mp4") == []
    assert name_words("beach/sunsetWaves_03.mp4") == ["beach", "sunset", "waves"]
    assert name_words("taxi2.mp4") == ["taxi"]


@pytest.mark.parametrize("query, why", [
    ("", "empty"), ("   ", "empty"), ("the of and", "only stop words"),
    ("un chien dans la rue", "another language"), ("ein Hund auf der Straße", "another language"),
    ("犬と猫", "not in English"),
])
def test_bad_queries_get_one_clear_message(query, why) -> None:
    with pytest.raises(QueryError) as err:
        check_query(query)
    assert why in err.value.message and err.value.hint


@pytest.mark.parametrize("query", ["a dog", "a taxi in traffic", "someone", "Maya walks",
                                   "la dolce vita", "a red car at night"])
def test_ordinary_queries_pass(query, tmp_path, capsys) -> None:
    """`montage search` takes them: it goes past the query check to the library (here one with
    no index, so that is the one error), where a refused query would stop with its message."""
    from montage.cli import main

    assert check_query(query) is None
    assert main(["search", str(tmp_path), query]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the footage library {tmp_path} has no index yet"), err
    assert "query" not in err


def test_cli_search_refuses_an_empty_query(tmp_path, capsys) -> None:
    from montage.cli import main

    assert main(["search", str(tmp_path), "  "]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: the search query is empty" and err[1].lstrip().startswith("hint:")
    assert not any("Traceback" in line for line in err)
