"""Recover a torch checkpoint from a fer-edge INT8 QDQ ONNX export of a timm CNN.

The FP32 checkpoints behind the first shipped models were lost (they lived in an ignored ``runs/``), so
this rebuilds one from the shipped ``accurate_int8.onnx``: each ``Conv`` node (named after its torch module
by the exporter, BatchNorm already folded in) gives that module's dequantized weights, and the BatchNorm
after it becomes ``y = x + bias``; the ``Gemm`` gives the classifier. The result computes what the ONNX
model computes without its activation quantization, so it is a faithful FP32 stand-in (an exact dequant of
the INT8 weights, not the lost original) for re-export, re-quantization and distillation. It is checked
against the ONNX model evaluated exactly (unfused QDQ, no INT8 kernels) on real faces before it is written.

    python -m fer_edge.export.recover fer_edge/assets/accurate_int8.onnx checkpoints/default-mnv2-96 \\
        --data ../shared/datasets/fer2013/val
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fer_edge.runtime.errors import FerEdgeError

MIN_AGREEMENT = 0.97  # top-1 agreement with the exact QDQ evaluation required before writing


def _dequantized(graph, name: str) -> np.ndarray:
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float32)
    node = next((n for n in graph.node if name in n.output), None)
    if node is None or node.op_type != "DequantizeLinear" or node.input[0] not in inits:
        raise FerEdgeError(f"tensor {name} is neither a constant nor a dequantized constant")
    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    zp = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) if len(node.input) > 2
          else np.zeros_like(scale))
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q - zp) * scale


def module_path(node_name: str) -> str:
    """``/blocks/blocks.0/blocks.0.0/conv_dw/Conv`` -> ``blocks.0.0.conv_dw`` (torch's export scopes)."""
    path = ""
    for part in node_name.strip("/").split("/")[:-1]:
        path = part if path and part.startswith(path + ".") else (f"{path}.{part}" if path else part)
    return path


def recover(onnx_path: str | Path):
    """(torch model, fer-edge metadata dict) rebuilt from a QDQ ONNX export of a timm CNN."""
    import onnx
    import torch
    from torch import nn

    from fer_edge.runtime.metadata import METADATA_KEY
    from fer_edge.train.models import build_model, model_kwargs_for

    m = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in m.metadata_props}
    if METADATA_KEY not in props:
        raise FerEdgeError(f"{onnx_path} carries no fer-edge metadata")
    meta = json.loads(props[METADATA_KEY])
    arch = meta.get("arch")
    if not arch or arch == "cnn":
        raise FerEdgeError(f"{onnx_path}: recovery handles timm CNNs, not '{arch}'")
    kw = model_kwargs_for(arch, len(meta["classes"]), int(meta["channels"]), int(meta["input_size"][0]))
    model = build_model(kw)
    mods = dict(model.named_modules())
    order = list(mods)
    done: set[str] = set()
    with torch.no_grad():
        for node in m.graph.node:
            if node.op_type == "Conv":
                path = module_path(node.name)
                conv = mods.get(path)
                if not isinstance(conv, nn.Conv2d):
                    raise FerEdgeError(f"ONNX node {node.name} names no conv of {arch} ({path})")
                w, b = _dequantized(m.graph, node.input[1]), _dequantized(m.graph, node.input[2])
                bn_name = next((k for k in order[order.index(path) + 1:] if isinstance(mods[k], nn.BatchNorm2d)),
                               None)
                if tuple(conv.weight.shape) != w.shape or bn_name is None:
                    raise FerEdgeError(f"ONNX node {node.name} does not fit {path} of {arch}")
                bn = mods[bn_name]
                conv.weight.copy_(torch.from_numpy(w))
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(b))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                done.add(path)
            elif node.op_type == "Gemm":
                head = model.get_classifier()
                w, b = _dequantized(m.graph, node.input[1]), _dequantized(m.graph, node.input[2])
                trans = next((a.i for a in node.attribute if a.name == "transB"), 0)
                head.weight.copy_(torch.from_numpy(w if trans else w.T))
                head.bias.copy_(torch.from_numpy(b))
                done.add("classifier")
    convs = [k for k, v in mods.items() if isinstance(v, nn.Conv2d)]
    if set(convs) - done or "classifier" not in done:
        raise FerEdgeError(f"{onnx_path}: {len(set(convs) - done)} convs of {arch} found no ONNX node")
    return model.eval(), meta, kw


def agreement(model, onnx_path: str | Path, faces: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 agreement of ``model`` with the ONNX model evaluated exactly (no graph fusion: every QDQ pair
    runs as float arithmetic) on normalised faces, and both accuracies."""
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref, got = [], []
    with torch.no_grad():
        for i in range(0, len(faces), 256):
            x = faces[i:i + 256]
            ref.append(sess.run(None, {name: x})[0].argmax(1))
            got.append(model(torch.from_numpy(x)).argmax(1).numpy())
    ref_a, got_a = np.concatenate(ref), np.concatenate(got)
    return {"faces": len(faces), "agreement": float((ref_a == got_a).mean()),
            "accuracy_onnx_exact": float((ref_a == labels).mean()),
            "accuracy_recovered": float((got_a == labels).mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.export.recover", description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx", help="a fer-edge INT8 QDQ .onnx export of a timm CNN")
    ap.add_argument("out", help="release folder to write (model.safetensors + model_card.json)")
    ap.add_argument("--data", required=True, help="labelled faces to check the recovery on (a val split)")
    a = ap.parse_args(argv)
    try:
        from fer_edge.classes import EMOTIONS
        from fer_edge.data import resolve_eval_data
        from fer_edge.runtime.metadata import ModelMeta
        from fer_edge.runtime.preprocess import normalized_faces
        from fer_edge.train.checkpoint import FORMAT, make_model_card, write_release

        model, meta, kw = recover(a.onnx)
        rmeta = ModelMeta.from_dict(meta, a.onnx)
        ds = resolve_eval_data(a.data, EMOTIONS, log=None)
        faces = normalized_faces(rmeta, ds.images)
        check = agreement(model, a.onnx, faces, ds.labels)
        print(f"recovered {meta['arch']}: {check['agreement']:.4f} top-1 agreement with the exact ONNX evaluation "
              f"on {check['faces']} faces (accuracy {check['accuracy_recovered']:.4f} vs "
              f"{check['accuracy_onnx_exact']:.4f})")
        if check["agreement"] < MIN_AGREEMENT:
            raise FerEdgeError(f"agreement {check['agreement']:.4f} is below {MIN_AGREEMENT}: nothing written")
        card = make_model_card(classes=meta["classes"], input_size=meta["input_size"], channels=meta["channels"],
                               mean=meta["mean"], std=meta["std"], arch=meta["arch"],
                               fingerprint=meta.get("training_data_fingerprint"),
                               metrics={"recovery_check": check, **(meta.get("training_metrics") or {})},
                               command=["python", "-m", "fer_edge.export.recover", *sys.argv[1:]],
                               crop_margin=meta["crop_margin"])
        card["recovered_from"] = {"file": Path(a.onnx).name, "exported": meta.get("exported"),
                                  "source_checkpoint_sha256": meta.get("source_checkpoint_sha256"),
                                  "training_command": meta.get("training_command"),
                                  "note": "weights = the INT8 export's weights dequantized (BatchNorm folded)"}
        out = write_release({"format": FORMAT, "state_dict": model.state_dict(), "arch": meta["arch"],
                             "model_kwargs": kw, "model_card": card, "epoch": 0}, a.out)
        print(f"wrote {out}")
        return 0
    except FerEdgeError as e:
        print(f"fer-edge: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
