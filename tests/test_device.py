"""--device: auto picks CUDA only when present; asking for CUDA where there is none is an error."""
from __future__ import annotations

import pytest
import torch

from montage.cli import main
from planner.errors import ModelError
from retrieval.embed.device import DEVICE_ENV, resolve_device
from tests.conftest import make_still


def test_auto_and_the_environment_pick_the_device(monkeypatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert resolve_device(None) == "cpu"
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")
def test_cuda_without_a_gpu_is_one_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(DEVICE_ENV, "auto")  # restored after the test, whatever the CLI sets
    make_still(tmp_path / "lib" / "a.png")
    assert main(["index", str(tmp_path / "lib"), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda asked for, but torch sees no CUDA device")
    assert "hint: drop --device" in err and "Traceback" not in err
    assert not (tmp_path / "lib" / ".montage").exists()  # refused before any work
