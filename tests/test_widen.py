"""Function-preserving widening of a trained CNN (fer_edge.train.widen), the start of the `vgg-wide` training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fer_edge.runtime.errors import FerEdgeError  # noqa: E402
from fer_edge.train import models as M  # noqa: E402
from fer_edge.train.widen import main as widen_main  # noqa: E402
from fer_edge.train.widen import widen  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _randomised(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Random BatchNorm statistics and affine terms, so that a wrong channel mapping cannot go unseen."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def _build(preset: str) -> torch.nn.Module:
    return M.build_model(M.model_kwargs_for(preset, 7, 1))


def test_widened_network_computes_the_same_logits():
    torch.manual_seed(0)
    src = _randomised(_build("vgg-half"))
    dst = _build("vgg-wide").eval()
    widen(src, dst, noise=0.0)
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        ref, out = src(x), dst(x)
    assert [m.out_channels for m in dst.modules() if isinstance(m, torch.nn.Conv2d)][::2] == [40, 80, 160, 320]
    assert torch.allclose(ref, out, atol=1e-4), (ref - out).abs().max()
    widen(src, dst, noise=0.05)  # the noise moves the copies, not the function as a whole
    with torch.no_grad():
        moved = dst(x)
    assert 0 < (moved - ref).abs().max() < 0.05 * ref.abs().max()


def test_widen_refuses_other_shapes():
    src = _build("vgg-wide")
    with pytest.raises(FerEdgeError, match="cannot widen"):
        widen(src, _build("vgg-half"))
    with pytest.raises(FerEdgeError, match="FC widths"):
        widen(_build("vgg-half"), _build("vgg"))  # the VGG's head is 1024 wide
    with pytest.raises(FerEdgeError, match="same depth"):
        widen(_build("vgg-half"), _build("cnn-mid"))


def test_widen_cli_on_the_shipped_checkpoint(tmp_path, capsys):
    """The committed `accurate` source checkpoint, widened from the command line, loads with train's --weights
    loader and gives its logits on real faces."""
    from fer_edge.train.checkpoint import load_checkpoint

    ckpt = REPO / "checkpoints" / "accurate-vgg-half-tencrop"
    out = tmp_path / "wide.safetensors"
    assert widen_main([str(ckpt), "--arch", "vgg-wide", "--out", str(out)]) == 0
    assert "largest logit change" in capsys.readouterr().out
    src, _ = load_checkpoint(ckpt)
    dst = _build("vgg-wide")
    M.load_weights(dst, out)
    dst.eval()
    import cv2

    from conftest import SHARED

    files = sorted((SHARED / "datasets" / "fer2013" / "val").glob("*/*.jpg"))[::600][:6]
    gray = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]).astype(np.float32) / 255
    faces = torch.from_numpy((gray[:, None] - 0.5077) / 0.2551)  # the checkpoint's normalisation
    with torch.no_grad():
        a, b = src(faces), dst(faces)
    assert (a.argmax(1) == b.argmax(1)).all()
    assert (a - b).abs().max() < 0.05
    assert widen_main([str(ckpt), "--arch", "vgg-half", "--out", str(tmp_path / "x.safetensors")]) == 0
    assert widen_main([str(ckpt), "--arch", "cnn-mid", "--out", str(tmp_path / "y.safetensors")]) == 2
    assert "same depth" in capsys.readouterr().err
