"""PyTorch checkpoint to a verified, simplified ONNX file (opset >= 17, dynamic batch)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fer_edge.runtime.errors import FerEdgeError

OPSET = 17


def bilinear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of a 1-D bilinear resize with half-pixel centres (``F.interpolate(mode="bilinear",
    align_corners=False)``, OpenCV's INTER_LINEAR), so a 2-D resize is ``A_h @ X @ A_w.T``."""
    a = np.zeros((n_out, n_in), np.float32)
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, None)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(np.float32)
    np.add.at(a, (np.arange(n_out), i0), 1 - lam)
    np.add.at(a, (np.arange(n_out), i1), lam)
    return a


def two_view_averaged(model, input_hw: tuple[int, int], fraction: float = 1.0):
    """``model`` with two test-time views inside, run as one batch of 2N: with ``fraction`` 1 the face and its mirror
    (``--tta flip``); below 1 two of ten-crop's views (``--tta diagonal``), the top-left ``fraction`` crop and the
    mirrored bottom-right one, each resized back to the input size (bilinear, as two constant matrix products, which
    keep the shapes static for the ONNX exporter). The output is the log of the mean of the two views' softmax
    probabilities, so the runtime, which only sees [N, C, H, W] -> [N, K], gets the averaged probabilities."""
    import torch

    h, w = input_hw
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))

    class TwoViewAveraged(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.resize = (ch, cw) != (h, w)
            if self.resize:
                self.register_buffer("rows", torch.from_numpy(bilinear_matrix(h, ch)))
                self.register_buffer("cols_t", torch.from_numpy(bilinear_matrix(w, cw).T.copy()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = torch.cat([x[..., :ch, :cw], x[..., h - ch:, w - cw:].flip(-1)], 0)
            if self.resize:
                v = self.rows @ v @ self.cols_t
            p = torch.softmax(self.inner(v), dim=1)
            n = x.shape[0]
            return torch.log(((p[:n] + p[n:]) * 0.5).clamp_min(1e-12))

    return TwoViewAveraged(model).eval()


def torch_to_onnx(model, input_shape: tuple[int, int, int], path: Path, opset: int = OPSET) -> Path:
    """Export ``model`` (eval mode) with input ``input`` [N, C, H, W] and output ``logits`` [N, K]."""
    import torch

    dummy = torch.zeros((2, *input_shape), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (dummy,), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
        except Exception as e:  # the exporter raises many types for unsupported ops
            raise FerEdgeError(f"ONNX export of the model failed ({str(e).splitlines()[0][:200]})")
    return path


def simplify_and_check(path: Path) -> Path:
    """Simplify with onnxslim (kept only if it still checks) and run onnx.checker."""
    import onnx

    try:
        import onnxslim

        slim = onnxslim.slim(onnx.load(str(path)))
        onnx.checker.check_model(slim)
        onnx.save(slim, str(path))
    except ImportError:
        pass
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise FerEdgeError(f"the exported ONNX model fails onnx.checker ({str(e).splitlines()[0][:200]})")
    return path


def onnx_parity(model, path: Path, inputs: np.ndarray, atol: float = 1e-3) -> dict[str, float]:
    """Compare ONNX Runtime with PyTorch on real faces; raise when the logits or top-1 labels disagree."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = model(torch.from_numpy(inputs)).float().numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: inputs})[0]
    diff = float(np.abs(ref - got).max())
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    scale = max(1.0, float(np.abs(ref).max()))
    if diff > atol * scale or agree < 0.995:
        raise FerEdgeError(f"ONNX Runtime disagrees with PyTorch on {len(inputs)} real faces (max abs logit "
                           f"difference {diff:.2e}, top-1 agreement {agree:.2%}); the export was stopped")
    return {"max_abs_diff": diff, "top1_agreement": agree, "faces": len(inputs)}
