"""How fast the CLIP image towers of the catalogue run on this machine's CPU, in torch and in
ONNX Runtime: `python bench/models.py`.

Real weights cannot be downloaded here, but speed depends on the architecture, not on the
weights: each model is built by open_clip from its own config with random weights. Measured:
images per second through the image tower (batches of 16 at the model's input size, the
threads torch and ONNX Runtime take by default), after one warm-up batch. ViT-B-32 is the
clip-vit-b32 entry; ViT-B-32-256 (DataComp, 72.8 % zero-shot against 66.6 %) and ViT-B-16 are
the CPU alternatives it was chosen over; ViT-L-14 is the GPU entry. ONNX: the same tower
exported once with torch.onnx (opset 17). Prints JSON lines with the load average.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

BATCH = 16
MODELS = ("ViT-B-32", "ViT-B-32-256", "ViT-B-16", "ViT-L-14")


def emit(**data) -> None:
    print(json.dumps(data), flush=True)


def rate(run, batch) -> float:
    run(batch[:2])  # warm-up
    t = time.perf_counter()
    run(batch)
    return len(batch) / (time.perf_counter() - t)


def main() -> None:
    import logging

    import open_clip
    import torch

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights loaded": on purpose
    emit(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version(),
         torch=torch.__version__, torch_threads=torch.get_num_threads())
    only = sys.argv[1:] or MODELS
    for name in only:
        load = os.getloadavg()
        model = open_clip.create_model(name).eval()
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        x = torch.randn(BATCH, 3, size, size)
        with torch.inference_mode():
            torch_rate = rate(lambda b: model.encode_image(b), x)
        row = {"model": name, "input": size, "torch_images_per_s": round(torch_rate, 2)}
        try:
            import onnxruntime as ort

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "visual.onnx"
                torch.onnx.export(model.visual, x[:1], str(path), input_names=["image"],
                                  output_names=["vector"], dynamic_axes={"image": {0: "n"}},
                                  opset_version=17, dynamo=False)
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                xn = x.numpy()
                onnx_rate = rate(lambda b: session.run(None, {"image": b}), xn)
            row.update(onnx_images_per_s=round(onnx_rate, 2),
                       onnx_over_torch=round(onnx_rate / torch_rate, 2))
        except Exception as exc:  # noqa: BLE001 - the torch number stands on its own
            row.update(onnx_error=f"{type(exc).__name__}: {exc}"[:200])
        emit(**row, load_before=[round(v, 2) for v in load],
             load_after=[round(v, 2) for v in os.getloadavg()])


if __name__ == "__main__":
    main()
