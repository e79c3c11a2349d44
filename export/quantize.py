"""INT8 post-training quantization: ONNX Runtime static QDQ (ONNX) and NNCF (OpenVINO IR)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.runtime.errors import FerEdgeError

ONNX_CALIB_PERCENTILE = 99.99


def model_family(arch: str) -> str:
    a = arch.lower()
    if any(k in a for k in ("vit", "deit", "swin", "beit", "eva", "levit")):
        return "transformer"
    if "mobilenetv3" in a:
        return "mobilenetv3"
    return "cnn"


def nncf_settings(arch: str) -> dict[str, Any]:
    """Per-family NNCF options: MobileNetV3 MIXED + full bias correction, transformers TRANSFORMER."""
    import nncf

    family = model_family(arch)
    if family == "transformer":
        return {"model_type": nncf.ModelType.TRANSFORMER, "preset": nncf.QuantizationPreset.MIXED}
    if family == "mobilenetv3":
        return {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False}
    return {"preset": nncf.QuantizationPreset.PERFORMANCE}


def _describe(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in settings.items()}


def quantize_openvino(ov_model, arch: str, calib: np.ndarray, max_drop: float | None = None,
                      val_inputs: np.ndarray | None = None, val_labels: np.ndarray | None = None,
                      preset: str | None = None):
    """NNCF PTQ of an ov.Model; with ``max_drop``, accuracy-controlled against the validation faces;
    ``preset`` ('performance' or 'mixed') overrides the family's default NNCF preset."""
    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    settings = nncf_settings(arch)
    if preset is not None:
        settings["preset"] = nncf.QuantizationPreset(preset)
    calibration = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    info = {"tool": f"nncf {nncf.__version__}", "method": "post_training_quantization",
            "calibration_faces": len(calib), **_describe(settings)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if max_drop is None:
            q = nncf.quantize(ov_model, calibration, subset_size=len(calib), **settings)
            return q, info
        if val_inputs is None or val_labels is None:
            raise FerEdgeError("--max-drop needs labelled validation faces (--data)")
        import openvino as ov

        validation = nncf.Dataset(list(range(0, len(val_inputs), 256)))

        def validate(compiled: ov.CompiledModel, items) -> float:
            correct = 0
            for start in items:
                x = val_inputs[start : start + 256]
                out = compiled(x)[compiled.output(0)]
                correct += int((np.asarray(out).argmax(1) == val_labels[start : start + 256]).sum())
            return correct / len(val_inputs)

        settings.pop("fast_bias_correction", None)  # not an option of the accuracy-control API
        q = nncf.quantize_with_accuracy_control(ov_model, calibration, validation, validate, max_drop=max_drop,
                                                drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib),
                                                **settings)
        info.update(method="quantize_with_accuracy_control", max_drop=max_drop)
        return q, info


class _Reader:
    """onnxruntime CalibrationDataReader over normalised faces, one per call."""

    def __init__(self, name: str, calib: np.ndarray):
        self.name, self.calib, self.i = name, calib, 0

    def get_next(self):
        if self.i >= len(self.calib):
            return None
        self.i += 1
        return {self.name: self.calib[self.i - 1 : self.i]}

    def rewind(self):
        self.i = 0


def tta_wrapper_nodes(path: Path) -> list[str]:
    """Nodes of an exporter test-time-augmentation wrapper (the model itself sits under ``/inner/``): the view
    crops, their resize and the averaging, which stay FP32: they are cheap, and quantized they made OpenVINO's
    reading of the QDQ model (``--preset ort-qdq``) answer differently from ONNX Runtime's."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    if not any(n.name.startswith("/inner/") for n in nodes):
        return []
    return [n.name for n in nodes if n.name and not n.name.startswith("/inner/")]


def quantize_onnx(fp32: Path, out: Path, calib: np.ndarray, score: Callable[[Path], float],
                  work: Path) -> dict[str, Any]:
    """Static QDQ INT8 (S8S8) of ``fp32``: per-channel or per-tensor weights, MinMax or 99.99th-percentile
    activation ranges, whichever of the four scores best (``score``: val accuracy).

    Percentile ranges matter for MobileNetV3: its hard-swish activations have rare outliers that MinMax
    stretches the INT8 grid over (measured: -1.1 points with MinMax, -0.2 with Percentile).
    """
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger().setLevel(logging.ERROR)
    pre = work / "pre.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantize the plain model when it fails
            pre = fp32
        name = onnxruntime.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        keep_fp32 = tta_wrapper_nodes(pre)
        candidates: dict[tuple[str, bool], tuple[float, Path]] = {}
        for method in ("MinMax", "Percentile"):
            extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
            if method == "Percentile":
                extra["CalibPercentile"] = ONNX_CALIB_PERCENTILE
            for per_channel in (True, False):
                cand = work / f"int8_{method.lower()}_{'pc' if per_channel else 'pt'}.onnx"
                with contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its settings
                    quantize_static(str(pre), str(cand), _Reader(name, calib), quant_format=QuantFormat.QDQ,
                                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                    per_channel=per_channel, calibrate_method=getattr(CalibrationMethod, method),
                                    nodes_to_exclude=keep_fp32, extra_options=extra)
                candidates[(method, per_channel)] = (score(cand), cand)
    best = max(candidates, key=lambda k: candidates[k][0])
    candidates[best][1].replace(out)
    return {"tool": f"onnxruntime {onnxruntime.__version__}", "method": "static QDQ", "activations": "int8",
            "weights": "int8", "per_channel": best[1], "calibrate_method": best[0],
            **({"calib_percentile": ONNX_CALIB_PERCENTILE} if best[0] == "Percentile" else {}),
            "calibration_faces": len(calib),
            "val_accuracy_candidates": {f"{m} {'per-channel' if pc else 'per-tensor'}": round(v[0], 6)
                                        for (m, pc), v in candidates.items()}}
