"""The numpy MiniLM against sentence-transformers, the implementation it replaces."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from retrieval.embed.text import DIM, encode_texts, model_path

TEXTS = ["a cat sleeping on a sofa", "A cyclist rides past a black taxi.", "", "Ünïcode ☃ 日本語",
         "tabby cat, tiger cat, Egyptian cat " * 60,  # past the 256-token limit: truncated
         "night"]


def test_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers", reason="the reference implementation")
    reference = st.SentenceTransformer(str(model_path()), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    ours = encode_texts(TEXTS, batch_size=4)  # batches of mixed lengths, padded
    assert ours.shape == (len(TEXTS), DIM) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-5
    # one text alone gives the same vector as in a padded batch
    assert np.abs(encode_texts(TEXTS[1:2])[0] - ours[1]).max() < 1e-5


def test_related_sentences_are_closer():
    a, b, c = encode_texts(["a dog runs on the beach", "a puppy playing by the sea",
                            "a spreadsheet of quarterly taxes"])
    assert a @ b > 0.4 > a @ c


def test_no_torch_import():
    """Embedding a query must not import torch or sentence-transformers (seconds at start-up)."""
    code = ("import sys; from retrieval.embed.text import encode_texts; encode_texts(['a red car']); "
            "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_empty():
    assert encode_texts([]).shape == (0, DIM)
