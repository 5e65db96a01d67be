"""The embedders on real weights (proxy) and on a tiny randomly initialised CLIP checkpoint."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from planner.errors import LibraryError, ModelError
from retrieval import build_index, make_embedder, open_index
from retrieval.embed.base import PROXY_NAME, Embedder
from retrieval.embed.registry import canonical_name
from retrieval.media.decode import read_still
from retrieval.embed.proxy3 import label_names, preprocess
from tests.conftest import make_cut_clip, make_still

SKIMAGE_DATA = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module")
def cat_and_coffee() -> list[np.ndarray]:
    return [read_still(SKIMAGE_DATA / "chelsea.png"), read_still(SKIMAGE_DATA / "coffee.png")]


def test_proxy_ranks_the_cat_and_the_coffee(proxy, cat_and_coffee) -> None:
    images = proxy.embed_images(cat_and_coffee, ["", ""])
    queries = proxy.embed_queries(["a cat", "a cup of coffee"])
    assert images.shape == (2, 384) and images.dtype == np.float32 and queries.shape == (2, 384)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    sims = queries @ images.T
    assert sims[0, 0] > sims[0, 1]  # "a cat": chelsea above coffee
    assert sims[1, 1] > sims[1, 0]  # "a cup of coffee": coffee above chelsea


def test_proxy_describes_what_it_sees(proxy, cat_and_coffee) -> None:
    cat_labels = proxy.describe(cat_and_coffee[0])
    coffee_labels = proxy.describe(cat_and_coffee[1])
    assert any("cat" in label.lower() or "mau" in label.lower() for label in cat_labels)
    assert coffee_labels[0] == "espresso"
    assert len(set(cat_labels)) == len(cat_labels) <= 5


def test_proxy_footage_text_pulls_the_vector_towards_its_words(proxy, cat_and_coffee) -> None:
    plain, named = proxy.embed_images([cat_and_coffee[1]] * 2, ["", "harbour with fishing boats"])
    boats = proxy.embed_queries(["fishing boats in a harbour"])[0]
    assert named @ boats > plain @ boats + 0.1


def test_proxy_preprocess_matches_the_model_input() -> None:
    wide = np.zeros((272, 640, 3), np.uint8)
    wide[:, 200:440] = 255  # the centre crop keeps the middle
    x = preprocess(wide)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert x.max() == pytest.approx((255 - 127) / 128) and x[:, 112, 112].min() > 0.9
    assert len(label_names()) == 1000 and label_names()[281] == "tabby cat"


def test_proxy_is_an_embedder_and_names_itself() -> None:
    from retrieval.embed.proxy4 import DIM

    emb = make_embedder("proxy")
    assert isinstance(emb, Embedder) and emb.name == "proxy-v4" and emb.dim == DIM
    assert canonical_name("proxy") == canonical_name("proxy-v4") == "proxy-v4"
    old = make_embedder("proxy-v3")
    assert old.name == canonical_name("proxy-v3") == "proxy-v3" and old.dim == 384


def test_proxy_people_hints_pull_the_vector_towards_people(proxy, cat_and_coffee) -> None:
    """ImageNet has no person class: what the face detector saw is mixed in as a phrase."""
    plain, hinted = proxy.embed_images([cat_and_coffee[1]] * 2, ["", ""],
                                       hints=[(), (("a person", 1.0),)])
    person = proxy.embed_queries(["a person"])[0]
    assert hinted @ person > plain @ person + 0.1
    assert np.allclose(np.linalg.norm(hinted), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="hint"):
        proxy.analyse([cat_and_coffee[0]], [""], hints=[(), ()])


def test_embedder_spec_from_command_line_options() -> None:
    from retrieval.embed.registry import embedder_spec

    assert embedder_spec(None) is None and embedder_spec("proxy") == "proxy"
    assert embedder_spec(None, "RN50", "/w.pt") == "clip:RN50:/w.pt"
    assert embedder_spec("clip", None, "openai") == "clip::openai"
    assert canonical_name(embedder_spec("clip", None, "openai")) == "clip:ViT-B-32:openai"
    with pytest.raises(ModelError, match="--embedder clip"):
        embedder_spec("proxy", "RN50", None)


def test_clip_without_weights_explains_why() -> None:
    with pytest.raises(ModelError) as err:
        make_embedder("clip")
    assert "internet" in err.value.message and "checkpoint" in err.value.hint
    with pytest.raises(ModelError, match="not found"):
        make_embedder("clip:ViT-B-32:/no/such/weights.pt")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[str, Path]:
    """A 2-layer CLIP registered with open_clip, its random weights saved as a checkpoint."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("clip")
    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2},
    }
    (folder / "montage-test-tiny.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "montage-test-tiny.json")
    torch.manual_seed(0)
    model = open_clip.create_model("montage-test-tiny")
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return "montage-test-tiny", checkpoint


def test_clip_loads_a_local_checkpoint_and_encodes(tiny_clip, cat_and_coffee) -> None:
    model, checkpoint = tiny_clip
    emb = make_embedder(f"clip:{model}:{checkpoint}", vocabulary=("cat", "cup of coffee", "car"))
    assert emb.name == f"clip:{model}:{checkpoint}" and emb.dim == 32
    analysis = emb.analyse(cat_and_coffee, ["", "kitchen table"])
    assert analysis.vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(analysis.vectors, axis=1), 1.0, atol=1e-5)
    assert all(1 <= len(labels) <= 3 for labels in analysis.labels)
    assert set(emb.describe(cat_and_coffee[0])) <= {"cat", "cup of coffee", "car"}
    queries = emb.embed_queries(["a cat", "a cup of coffee"])
    assert queries.shape == (2, 32) and not np.allclose(queries[0], queries[1])


def test_index_rebuilds_for_another_embedder_and_search_checks_it(tiny_clip, proxy, tmp_path,
                                                                   caplog) -> None:
    model, checkpoint = tiny_clip
    make_cut_clip(tmp_path / "cuts.mp4", ["red", "blue"])
    make_still(tmp_path / "still.png")
    first = build_index(tmp_path, proxy, progress=False, workers=0)
    assert first.embedder == "proxy-v3" and first.files_indexed == 2
    caplog.set_level(logging.INFO)
    clip = make_embedder(f"clip:{model}:{checkpoint}", vocabulary=("red", "blue"))
    report = build_index(tmp_path, clip, progress=False, workers=0)
    assert (report.files_indexed, report.files_reused, report.embedder) == (2, 0, clip.name)
    # another embedder: proxy-v3's vectors are set aside, the stored keyframes re-embedded
    assert (report.parked, report.files_reembedded) == ("proxy-v3", 2)
    assert any("proxy-v3" in r.getMessage() and "kept" in r.getMessage()
               for r in caplog.records)
    index = open_index(tmp_path)
    assert index.embedder_name == clip.name and index.vectors.dim == 32
    hits = index.search(["red"], 2)[0]  # the index's own embedder, rebuilt from its name
    assert len(hits) == 2
    with pytest.raises(LibraryError) as err:
        index.search(["red"], 2, embedder="proxy")
    assert clip.name in str(err.value) and PROXY_NAME in str(err.value)


def test_cli_indexes_and_searches_with_clip_options(tiny_clip, tmp_path, capsys) -> None:
    from montage.cli import main

    model, checkpoint = tiny_clip
    make_still(tmp_path / "lib" / "card.png")
    args = ["--clip-model", model, "--clip-pretrained", str(checkpoint)]
    assert main(["index", str(tmp_path / "lib"), *args, "--quiet", "--workers", "0"]) == 0
    assert "indexed 1 files" in capsys.readouterr().out
    assert main(["search", str(tmp_path / "lib"), "a card", "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out)[0]["hits"][0]["path"] == "card.png"
    assert main(["search", str(tmp_path / "lib"), "a card", "--embedder", "proxy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and PROXY_NAME in err and model in err
