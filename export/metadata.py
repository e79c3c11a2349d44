"""Embedding the ``fer_edge`` model card in ONNX files and OpenVINO IRs, written by the runtime's own schema
(:class:`ModelMeta`, which also reads it back)."""

from __future__ import annotations

from pathlib import Path

from fer_edge.runtime.metadata import METADATA_KEY, ModelMeta


def set_onnx_metadata(path: Path, meta: ModelMeta) -> None:
    """Write ``meta`` as JSON under ``fer_edge`` in the file's metadata_props (replacing an older one)."""
    import onnx

    model = onnx.load(str(path))
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for k, v in [*keep, (METADATA_KEY, meta.to_json())]:
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))


def set_openvino_metadata(model, meta: ModelMeta) -> None:
    """Put ``meta`` in an ov.Model's rt_info under ``fer_edge`` (saved into the .xml)."""
    model.set_rt_info(meta.to_json(), [METADATA_KEY])
