"""EfficientNet-Lite0 through ONNX Runtime against the same weights in torch."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embed.classifier import MAX_ERROR, Classifier, export, onnx_path, torch_model
from retrieval.media.decode import read_still
from retrieval.embed.proxy3 import ProxyEmbedder, _crops, preprocess

ROOT = Path(__file__).resolve().parent.parent
SKIMAGE_DATA = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module")
def cache(model_cache) -> Path:
    return model_cache


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    wide = read_still(SKIMAGE_DATA / "astronaut.png")[100:300]  # 512x200: four crops
    return [read_still(SKIMAGE_DATA / n) for n in ("chelsea.png", "coffee.png", "rocket.jpg")] \
        + [wide]


def _torch_classify(images: list[np.ndarray]) -> np.ndarray:
    """proxy-v3's classify as it was in torch: each class's highest probability over the
    crops, renormalised."""
    import torch

    model = torch_model()
    out = np.zeros((len(images), 1000), np.float32)
    for n, image in enumerate(images):
        batch = np.stack([preprocess(c) for c in _crops(image)])
        with torch.inference_mode():
            p = torch.softmax(model(torch.from_numpy(batch)), dim=1).numpy()
        out[n] = p.max(axis=0)
    return out / out.sum(axis=1, keepdims=True)


def test_onnx_probabilities_match_torch(cache, images) -> None:
    emb = ProxyEmbedder(cache_dir=cache, threads=1)
    got = emb.classify(images)
    want = _torch_classify(images)
    assert got.shape == (4, 1000) and got.dtype == np.float32
    assert np.abs(got - want).max() < MAX_ERROR
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    assert onnx_path(cache).is_file()  # exported into the cache it was given


def test_a_run_that_finds_the_export_does_not_import_torch(cache, images) -> None:
    ProxyEmbedder(cache_dir=cache, threads=1).classify(images[:1])  # exported by now
    code = ("import json, sys; import numpy as np; from retrieval.embed.proxy3 import ProxyEmbedder; "
            "p = ProxyEmbedder(cache_dir=sys.argv[1], threads=1).classify("
            "[np.full((90, 160, 3), 120, np.uint8)]); "
            "print(json.dumps([p.shape[1], 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1000, False]


def test_batches_give_the_probabilities_of_single_crops(cache, images) -> None:
    """Batching crops of several frames in one call changes nothing about any one of them."""
    model = Classifier(onnx_path(cache), threads=1)
    batch = np.stack([preprocess(im) for im in images])
    together = model.probabilities(batch)
    alone = np.concatenate([model.probabilities(batch[i:i + 1]) for i in range(len(batch))])
    assert np.abs(together - alone).max() < 1e-5


@pytest.mark.slow
def test_export_into_an_empty_cache_and_recover_from_a_damaged_file(tmp_path, images) -> None:
    from retrieval.embed.classifier import load

    target = onnx_path(tmp_path)
    seconds = export(target)
    assert target.is_file() and seconds > 0
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left beside it
    target.write_bytes(b"not a model")
    load.cache_clear()
    model = load(str(tmp_path), 1)  # re-exported, with a warning
    assert model.probabilities(np.stack([preprocess(images[0])])).argmax() in range(281, 286)
