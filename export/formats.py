"""The table of export formats (what each stores, and the writer in :mod:`fer_edge.export.writers` that makes it)
and the one export request, validated once, before any work."""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.runtime.errors import FerEdgeError
from fer_edge.runtime.metadata import MIN_CROP_MARGIN


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    precisions: tuple[str, ...]  # float precisions it can store
    quantize: tuple[str, ...]  # post-training quantization it supports
    runtime: str  # the runtime backend that runs it
    description: str
    writer: str  # the function of fer_edge.export.writers that writes it


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", ".onnx", ("fp32",), ("int8",), "onnxruntime",
                     "ONNX (opset 17, dynamic batch, simplified); INT8 = ONNX Runtime static QDQ, S8S8 (Arm, x86)",
                     "write_onnx"),
        ExportFormat("openvino", ".xml", ("fp32", "fp16"), ("int8",), "openvino",
                     "OpenVINO IR (.xml + .bin); INT8 = NNCF post-training quantization, or ONNX Runtime's QDQ "
                     "model read by OpenVINO (--preset ort-qdq) (x86)", "write_openvino"),
    )
}


# NNCF quantization presets: symmetric weights and activations (performance), or asymmetric activations (mixed).
NNCF_PRESETS = ("performance", "mixed")
# OpenVINO INT8 without NNCF: ONNX Runtime's static QDQ model (what --format onnx --quantize int8 writes), read by
# OpenVINO, so the x86 IR and the Arm ONNX file carry the same quantization and give the same answers.
ORT_QDQ_PRESET = "ort-qdq"
OPENVINO_INT8_PRESETS = (*NNCF_PRESETS, ORT_QDQ_PRESET)
# Test-time augmentation baked into the exported graph, two views per face in one batch: the face and its mirror
# or "diagonal": the top-left 0.875 crop and the mirrored bottom-right one; the views' probabilities are averaged.
EXPORT_TTA = ("flip", "diagonal")


@dataclass(frozen=True)
class ExportRequest:
    """Everything ``fer-edge export`` was asked to do."""

    format: str
    precision: str = "fp32"
    quantize: str | None = None
    max_drop: float | None = None
    calibration: str | None = None  # manifest or dataset folder (INT8)
    preset: str | None = None  # NNCF preset (OpenVINO INT8)
    checkpoint: str | None = None  # the training checkpoint to export
    out: str | None = None  # output folder (default: beside the checkpoint)
    name: str | None = None  # artifact file stem (default: the run folder's name)
    data: str | None = None  # labelled validation faces (default: val/ beside the calibration data)
    calibration_root: str | None = None  # where the manifest's images are
    val_limit: int | None = None  # measure on at most this many validation faces
    threads: int | None = None
    crop_margin: float | None = None  # the runtime crop margin to store (default: the checkpoint's)
    tta: str | None = None  # test-time augmentation inside the graph (EXPORT_TTA)

    def validate(self) -> ExportRequest:
        """Reject unknown formats, invalid combinations and out-of-range values with one sentence, before any
        work starts."""
        fmt = FORMATS.get(self.format)
        if fmt is None:
            raise FerEdgeError(f"unknown export format '{self.format}' (choose from {', '.join(FORMATS)})")
        if self.precision not in fmt.precisions:
            raise FerEdgeError(f"format '{fmt.name}' stores precision {' or '.join(fmt.precisions)}, not "
                               f"'{self.precision}'")
        if self.quantize is not None:
            if self.quantize not in fmt.quantize:
                raise FerEdgeError(f"format '{fmt.name}' supports --quantize {' or '.join(fmt.quantize)}, not "
                                   f"'{self.quantize}'")
            if self.precision != "fp32":
                raise FerEdgeError("--quantize int8 starts from the FP32 model; drop --precision "
                                   f"{self.precision}")
            if not self.calibration:
                raise FerEdgeError("--quantize int8 needs calibration faces: --calibration MANIFEST_OR_DIR "
                                   "(make a manifest with 'fer-edge calibrate --data DIR')")
        else:
            if self.max_drop is not None:
                raise FerEdgeError("--max-drop only applies with --quantize int8")
            if self.calibration:
                raise FerEdgeError("--calibration only applies with --quantize int8")
        if self.preset is not None:
            if self.quantize is None or self.format != "openvino":
                raise FerEdgeError("--preset chooses the OpenVINO INT8 quantization; it only applies with "
                                   "--format openvino --quantize int8")
            if self.preset not in OPENVINO_INT8_PRESETS:
                raise FerEdgeError(f"unknown --preset '{self.preset}' (choose from "
                                   f"{', '.join(OPENVINO_INT8_PRESETS)})")
            if self.preset == ORT_QDQ_PRESET and self.max_drop is not None:
                raise FerEdgeError("--max-drop uses NNCF accuracy control; it does not apply with --preset ort-qdq")
        if self.max_drop is not None and not 0.0 < self.max_drop < 1.0:
            raise FerEdgeError(f"--max-drop {self.max_drop} must lie in (0, 1) (an accuracy drop, 0.01 = 1 point)")
        if self.val_limit is not None and self.val_limit < 10:
            raise FerEdgeError("--val-limit must be at least 10")
        if self.crop_margin is not None and not MIN_CROP_MARGIN <= self.crop_margin <= 1.0:
            raise FerEdgeError(f"--crop-margin {self.crop_margin} is outside [{MIN_CROP_MARGIN}, 1]")
        if self.tta is not None and self.tta not in EXPORT_TTA:
            raise FerEdgeError(f"unknown --tta '{self.tta}' (choose from {', '.join(EXPORT_TTA)})")
        if not self.checkpoint:
            raise FerEdgeError("give the training checkpoint to export")
        return self

    @property
    def suffix(self) -> str:
        return FORMATS[self.format].suffix
