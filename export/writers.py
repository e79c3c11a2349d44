"""One writer per export format (named in :data:`fer_edge.export.formats.FORMATS`): from the verified FP32 ONNX
file of an :class:`ExportJob` to the format's artifacts, each carrying the model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.runtime.metadata import ModelMeta

from .formats import ORT_QDQ_PRESET, ExportRequest

Artifacts = list[tuple[str, Path]]  # (kind, e.g. "OpenVINO INT8", file in the temporary folder)


@dataclass
class ExportJob:
    """What every writer needs: the request, the network and its card, the faces, the temporary folder."""

    req: ExportRequest
    model: Any  # the torch module, in eval mode
    card: dict[str, Any]
    meta: ModelMeta  # runtime fields + provenance, written into every artifact
    name: str
    tmp: Path
    onnx_fp32: Path  # verified against PyTorch
    calib: np.ndarray | None  # normalised calibration faces (INT8)
    val_x: np.ndarray  # normalised validation faces
    val_labels: np.ndarray


def write_onnx(job: ExportJob) -> Artifacts:
    """The FP32 ONNX file, and with ``--quantize int8`` an ONNX Runtime static QDQ model chosen by val accuracy."""

    from .metadata import set_onnx_metadata

    artifacts: Artifacts = [("ONNX FP32", job.onnx_fp32)]
    if job.req.quantize:
        int8 = job.tmp / f"{job.name}_int8.onnx"
        info = _ort_qdq(job, int8)
        set_onnx_metadata(int8, job.meta.with_extra(precision="int8", quantization=info))
        artifacts.append(("ONNX INT8", int8))
    return artifacts


def _ort_qdq(job: ExportJob, out: Path) -> dict[str, Any]:
    """ONNX Runtime static QDQ quantization of the FP32 ONNX file into ``out``, its variant chosen by val
    accuracy; returns the quantization record."""
    from fer_edge.runtime.classifier import load_classifier

    from .metadata import set_onnx_metadata
    from .quantize import quantize_onnx
    from .report import predict_all

    def score(path: Path) -> float:
        set_onnx_metadata(path, job.meta.with_extra(precision="int8"))
        clf = load_classifier(path, threads=job.req.threads)
        return float((predict_all(clf.predict, job.val_x).argmax(1) == job.val_labels).mean())

    return quantize_onnx(job.onnx_fp32, out, job.calib, score, job.tmp)


def write_openvino(job: ExportJob) -> Artifacts:
    """An OpenVINO IR in FP32 or FP16, and with ``--quantize int8`` an INT8 IR: NNCF-quantized, or with ``--preset
    ort-qdq`` the ONNX Runtime QDQ model (as ``write_onnx`` makes it) converted to IR."""
    import openvino as ov

    from .metadata import set_openvino_metadata

    req = job.req
    fp = ov.convert_model(str(job.onnx_fp32))
    set_openvino_metadata(fp, job.meta.with_extra(precision=req.precision, quantization=None))
    xml = job.tmp / (f"{job.name}.xml" if req.precision == "fp32" else f"{job.name}_{req.precision}.xml")
    ov.save_model(fp, str(xml), compress_to_fp16=req.precision == "fp16")
    artifacts: Artifacts = [(f"OpenVINO {req.precision.upper()}", xml)]
    if req.quantize and req.preset == ORT_QDQ_PRESET:
        qdq = job.tmp / f"{job.name}_qdq.onnx"
        info = {**_ort_qdq(job, qdq), "preset": ORT_QDQ_PRESET, "converted_by": f"openvino {ov.__version__}"}
        q = ov.convert_model(str(qdq))
        qdq.unlink()
    elif req.quantize:
        from .quantize import quantize_openvino

        q, info = quantize_openvino(ov.convert_model(str(job.onnx_fp32)), str(job.card.get("arch")), job.calib,
                                    req.max_drop, job.val_x, job.val_labels, req.preset)
    if req.quantize:
        set_openvino_metadata(q, job.meta.with_extra(precision="int8", quantization=info))
        xml8 = job.tmp / f"{job.name}_int8.xml"
        ov.save_model(q, str(xml8), compress_to_fp16=False)
        artifacts.append(("OpenVINO INT8", xml8))
    job.onnx_fp32.unlink()
    return artifacts
