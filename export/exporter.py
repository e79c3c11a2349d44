"""``fer-edge export``: checkpoint -> verified ONNX -> OpenVINO IR / INT8, all with the fer_edge model card.

Artifacts are written into a temporary folder beside the output and moved into place only when every
step (parity check, quantization, measurement) has passed: a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge import __version__
from fer_edge.machine import machine_summary
from fer_edge.runtime.assets import sha256_of
from fer_edge.runtime.errors import FerEdgeError
from fer_edge.tta import TENCROP_FRACTION

from .formats import FORMATS, ExportRequest
from .report import ArtifactRow, markdown_table, measure, predict_all


def default_name(checkpoint: Path) -> str:
    if checkpoint.is_dir():
        return checkpoint.name
    return checkpoint.parent.name if checkpoint.stem in ("best", "last", "model") else checkpoint.stem


def default_out(checkpoint: Path) -> Path:
    """Beside a training run's checkpoint; ``exports/NAME`` (in the working folder) for a released checkpoint folder,
    which stays as it was committed."""
    from fer_edge.train.checkpoint import RELEASE_CARD

    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    if (folder / RELEASE_CARD).is_file():
        return Path("exports") / default_name(checkpoint)
    return checkpoint.parent


def _val_data(data: str | None, manifest: dict | None, classes, input_size, limit: int | None, log):
    from fer_edge.data import resolve_eval_data

    if data is None and manifest is not None and (Path(manifest["root"]) / "val").is_dir():
        data = str(Path(manifest["root"]) / "val")
    if data is None:
        raise FerEdgeError("give --data VAL_DIR: labelled faces to verify and measure the export on")
    ds = resolve_eval_data(data, tuple(classes), None, size=None, log=log, mixed_size=tuple(input_size))
    if limit and len(ds) > limit:
        idx = np.random.default_rng(0).permutation(len(ds))[:limit]
        ds = ds.subset(np.sort(idx))
    return ds


def run_export(req: ExportRequest, log=None) -> dict[str, Any]:
    """Export ``req.checkpoint`` as ``req`` says; returns the report (also written as Markdown and JSON)."""
    req.validate()
    try:
        import torch
    except ImportError:
        raise FerEdgeError("exporting a checkpoint needs torch (pip install 'fer-edge[train,export]')")
    from fer_edge.runtime.metadata import ModelMeta
    from fer_edge.runtime.preprocess import normalized_faces
    from fer_edge.train.checkpoint import load_checkpoint, runtime_meta, weights_file

    from . import writers
    from .calibration import load_calibration

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    ckpt = Path(req.checkpoint).expanduser()
    model, card = load_checkpoint(ckpt)
    if req.threads:
        torch.set_num_threads(req.threads)
    if req.tta:
        from .onnx_export import two_view_averaged

        model = two_view_averaged(model, tuple(card["input_size"]), 1.0 if req.tta == "flip" else TENCROP_FRACTION)
    if req.crop_margin is not None:  # the runtime crop, e.g. as measured by `fer-edge benchmark` on pasted faces
        card = {**card, "crop_margin": float(req.crop_margin)}
    meta = ModelMeta.from_dict({
        **runtime_meta(card), "arch": card.get("arch"), "source_checkpoint": ckpt.name,
        "source_checkpoint_sha256": sha256_of(weights_file(ckpt)),
        "training_data_fingerprint": card.get("training_data_fingerprint"),
        "training_metrics": card.get("metrics"), "training_command": card.get("command"),
        "git_commit": card.get("git_commit"), "fer_edge_version": __version__,
        **({"tta": req.tta} if req.tta else {}),
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, f"checkpoint {ckpt}")
    out_dir = Path(req.out).expanduser() if req.out else default_out(ckpt)
    name = req.name or default_name(ckpt)
    calib = manifest = None
    if req.quantize:
        images, _, manifest = load_calibration(req.calibration, meta.classes, req.calibration_root)
        calib = normalized_faces(meta, images)
        log(f"fer-edge: calibration: {len(calib)} faces from {req.calibration}")
    val = _val_data(req.data, manifest, meta.classes, meta.input_size, req.val_limit, log)
    val_x = normalized_faces(meta, val.images)
    log(f"fer-edge: validation: {val.describe(Path(val.source).name)}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FerEdgeError(f"cannot create output folder {out_dir} ({e.strerror or e})")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=out_dir))  # unique: exports may run side by side
    try:
        onnx_fp32, parity = _verified_onnx(model, meta, tmp / f"{name}.onnx", val_x, log)
        job = writers.ExportJob(req, model, card, meta, name, tmp, onnx_fp32, calib, val_x, val.labels)
        artifacts = getattr(writers, FORMATS[req.format].writer)(job)
        rows = _measure(job, ckpt, artifacts)
        final = _move_into_place(artifacts, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _write_report(req, ckpt, name, out_dir, val, parity, final, rows)


def _verified_onnx(model, meta, path: Path, val_x: np.ndarray, log) -> tuple[Path, dict[str, Any]]:
    """The FP32 ONNX file, simplified, checked and verified against PyTorch on real faces, with its model card."""
    from .metadata import set_onnx_metadata
    from .onnx_export import onnx_parity, simplify_and_check, torch_to_onnx

    torch_to_onnx(model, (meta.channels, *meta.input_size), path)
    simplify_and_check(path)
    parity = onnx_parity(model, path, val_x[:256])
    log(f"fer-edge: ONNX vs PyTorch on {parity['faces']} val faces: max abs logit difference "
        f"{parity['max_abs_diff']:.2e}, top-1 agreement {parity['top1_agreement']:.2%}")
    set_onnx_metadata(path, meta.with_extra(precision="fp32", quantization=None, parity_vs_torch=parity))
    return path, parity


def _measure(job, ckpt: Path, artifacts: list[tuple[str, Path]]) -> list[ArtifactRow]:
    """Every artifact against the PyTorch FP32 model, in this one run; float files must agree in FP32
    arithmetic, and INT8 must stay within --max-drop."""
    import torch

    from fer_edge.runtime.classifier import load_classifier

    req, model, classes = job.req, job.model, job.meta.classes

    def torch_predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(x)), 1).numpy()

    rows: list[ArtifactRow] = []
    ref_row, ref = measure("PyTorch FP32 (eager)", ckpt, torch_predict, job.val_x, job.val_labels, classes, None)
    rows.append(ref_row)
    for kind, path in artifacts:
        clf = load_classifier(path, threads=req.threads)
        row, _ = measure(kind, path, clf.predict, job.val_x, job.val_labels, classes, ref)
        rows.append(row)
        if "INT8" not in kind:  # verify the float file itself, in FP32 arithmetic (OpenVINO may pick bf16)
            strict = load_classifier(path, threads=req.threads, precision_hint="f32")
            agree = float((predict_all(strict.predict, job.val_x).argmax(1) == ref).mean())
            floor = 0.995 if "FP32" in kind else 0.98
            if agree < floor:
                raise FerEdgeError(f"{kind} ({path.name}) agrees with PyTorch on only {agree:.2%} of val faces in "
                                   "FP32 arithmetic; the export was stopped")
    int8_rows = [r for r in rows if "INT8" in r.kind]
    if req.max_drop is not None and int8_rows:
        fp32_acc = rows[1].accuracy if req.format == "onnx" else ref_row.accuracy
        drop = fp32_acc - int8_rows[0].accuracy
        if drop > req.max_drop:
            raise FerEdgeError(f"INT8 accuracy {int8_rows[0].accuracy:.4f} is {drop:.4f} below FP32 "
                               f"({fp32_acc:.4f}), more than --max-drop {req.max_drop}; nothing was written")
    return rows


def _move_into_place(artifacts: list[tuple[str, Path]], out_dir: Path) -> list[Path]:
    """Move the artifacts (and an IR's .bin) from the temporary folder into ``out_dir``."""
    final = []
    for _, path in artifacts:
        for part in (path, path.with_suffix(".bin")):
            if part.is_file() and (part.suffix != ".bin" or path.suffix == ".xml"):
                os.replace(part, out_dir / part.name)
        final.append(out_dir / path.name)
    return final


def _write_report(req: ExportRequest, ckpt: Path, name: str, out_dir: Path, val, parity: dict[str, Any],
                  final: list[Path], rows: list[ArtifactRow]) -> dict[str, Any]:
    """The export report as Markdown and JSON beside the artifacts; the table is printed."""
    report = {"checkpoint": str(ckpt), "format": req.format, "precision": req.precision, "quantize": req.quantize,
              "tta": req.tta,
              "max_drop": req.max_drop, "preset": req.preset, "calibration": req.calibration, "data": val.source,
              "faces": len(val),
              "parity_vs_torch": parity, "artifacts": [str(p) for p in final],
              "rows": [r.to_dict() for r in rows], "machine": machine_summary(req.threads)}
    table = markdown_table(rows)
    tta = f", {req.tta} TTA in the graph" if req.tta else ""
    md = (f"# Export report: {name}\n\ncheckpoint `{ckpt}` ({req.format}, {req.precision}"
          f"{', INT8' if req.quantize else ''}{tta}), measured on {len(val)} faces of `{val.source}` on "
          f"{report['machine']['cpu']} ({report['machine']['isa']}), {report['machine']['threads']} threads.\n\n"
          f"{table}\n")
    tag = f"{req.format}{'_int8' if req.quantize else '' if req.precision == 'fp32' else '_' + req.precision}"
    (out_dir / f"{name}_export_{tag}.md").write_text(md)
    (out_dir / f"{name}_export_{tag}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(table)
    return report
