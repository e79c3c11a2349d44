"""The emotion model that ships inside the package: found without --model, small, documented, reproducible."""

from __future__ import annotations

import json
import platform

from fer_edge.classes import EMOTIONS
from fer_edge.runtime.classifier import load_classifier
from fer_edge.runtime.models import default_classifier_path

from conftest import MEDIA, REPO, SHARED, run_cli

RESULTS = REPO / "benchmarks" / "results"


def test_default_model_is_shipped_small_and_carries_its_card():
    path = default_classifier_path()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert path.suffix == ".xml"  # OpenVINO INT8 on x86
    for f in (path.with_suffix(".xml"), path.with_suffix(".bin"), path.with_suffix(".onnx")):
        assert f.is_file() and f.stat().st_size <= 10 * 1024 * 1024, f
    for f in (path.with_suffix(".xml"), path.with_suffix(".onnx")):
        meta = load_classifier(f).meta
        assert meta.classes == EMOTIONS and meta.extra["precision"] == "int8"
        assert meta.extra["training_command"] and meta.extra["training_data_fingerprint"].startswith("sha256:")
        assert meta.extra["git_commit"] and meta.extra["quantization"]["calibration_faces"] == 301
        assert meta.extra["training_metrics"]["val_accuracy"] > 0.6


def test_run_without_model_labels_every_face(tmp_path):
    for extra in ([], ["--backend", "onnxruntime"]):
        out = tmp_path / f"faces{len(extra)}.jsonl"
        p = run_cli("run", "--image", str(MEDIA / "group_selfie_6faces.jpg"), "--json", str(out), *extra)
        assert p.returncode == 0, p.stderr
        recs = [json.loads(x) for x in out.read_text().splitlines()]
        assert 5 <= len(recs) <= 6 and all(r["label"] in EMOTIONS for r in recs)
        assert "accurate_int8" in p.stderr


def _published_table() -> str:
    """OpenVINO INT8 results may depend on the CPU: with VNNI/AMX the u8 x s8 products are exact; on AVX2 alone
    (vpmaddubsw, int16 saturation) the former MobileNetV2 IR gave 68.93% instead of 69.91%. Today's IR (ONNX
    Runtime's QDQ model read by OpenVINO) gives 70.35% / 70.38% (AVX2 table measured with ONEDNN_MAX_CPU_ISA=AVX2;
    README). The ONNX file, its weights stored as uint8 there, gives the same on both
    (test_onnx_model_reproduces_its_table_on_any_cpu)."""
    from fer_edge.runtime.classifier import x86_without_vnni

    if x86_without_vnni():
        return "default_model_val_avx2.json"
    return "default_model_val.json"


def test_evaluate_reproduces_the_published_table(tmp_path):
    published = json.loads((RESULTS / _published_table()).read_text())
    out = tmp_path / "val.json"
    p = run_cli("evaluate", str(default_classifier_path()), "--data", str(SHARED / "datasets/fer2013/val"),
                "--json", str(out), "--no-confusion")
    assert p.returncode == 0, p.stderr
    got = json.loads(out.read_text())
    assert got["n"] == published["n"] == 3589
    assert abs(got["accuracy"] - published["accuracy"]) <= 0.003
    assert abs(got["macro_f1"] - published["macro_f1"]) <= 0.003


def test_onnx_model_reproduces_its_table_on_any_cpu(tmp_path):
    published = json.loads((RESULTS / "default_model_val_onnx.json").read_text())
    out = tmp_path / "val_onnx.json"
    p = run_cli("evaluate", str(default_classifier_path().with_suffix(".onnx")), "--backend", "onnxruntime",
                "--data", str(SHARED / "datasets/fer2013/val"), "--json", str(out), "--no-confusion")
    assert p.returncode == 0, p.stderr
    got = json.loads(out.read_text())
    assert got["n"] == published["n"] == 3589
    assert abs(got["accuracy"] - published["accuracy"]) <= 0.003
    assert abs(got["macro_f1"] - published["macro_f1"]) <= 0.003


def test_shipped_models_by_name():
    import pytest

    from fer_edge.runtime.errors import FerEdgeError
    from fer_edge.runtime.models import MODEL_NAMES, classifier_path, shipped_models

    assert classifier_path("accurate") == default_classifier_path()
    for name, stem in MODEL_NAMES.items():
        if stem in shipped_models():
            assert classifier_path(name).stem == stem
        else:
            with pytest.raises(FerEdgeError, match="accurate"):
                classifier_path(name)
    with pytest.raises(FerEdgeError, match="neither a classifier file"):
        classifier_path("no-such-model")


def test_shipped_files_carry_their_model_name_and_the_former_name_still_loads():
    from fer_edge.runtime.models import MODEL_NAMES, assets_dir, classifier_path

    for name, stem in MODEL_NAMES.items():
        assert stem.startswith(name + "_")
        for ext in (".onnx", ".xml", ".bin"):
            assert (assets_dir() / f"{stem}{ext}").is_file(), f"{stem}{ext} is not shipped"
    assert classifier_path("emotion_int8", "onnxruntime") == classifier_path("accurate", "onnxruntime")


def test_fast_model_labels_every_face_and_assets_fit_10_mb(tmp_path):
    from fer_edge.runtime.models import assets_dir, classifier_path

    total = sum(p.stat().st_size for p in assets_dir().iterdir() if p.is_file())
    assert total <= 10 * 1024 * 1024, f"package assets are {total / 1e6:.1f} MB"
    for backend in ("onnxruntime", "openvino"):
        meta = load_classifier(classifier_path("fast", backend), backend).meta
        assert meta.input_size == (40, 40) and meta.extra["precision"] == "int8" and meta.extra["arch"] == "cnn"
    out = tmp_path / "fast.jsonl"
    p = run_cli("run", "--image", str(MEDIA / "group_selfie_6faces.jpg"), "--model", "fast", "--json", str(out))
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 6 and all(r["label"] in EMOTIONS for r in recs) and "fast_int8" in p.stderr


def test_shipped_models_source_checkpoints_are_committed():
    """Each shipped file names its FP32 source checkpoint and that file's SHA-256: the folder is in checkpoints/ with
    exactly those weights, so any machine can re-export, re-quantize or distil from it (issue 17, item 5)."""
    from fer_edge.runtime.assets import sha256_of

    for name in ("accurate", "fast"):
        for suffix in (".xml", ".onnx"):
            extra = load_classifier(REPO / "fer_edge" / "assets" / f"{name}_int8{suffix}").meta.extra
            weights = REPO / "checkpoints" / extra["source_checkpoint"] / "model.safetensors"
            assert weights.is_file(), (name, suffix, weights)
            assert sha256_of(weights) == extra["source_checkpoint_sha256"], (name, suffix)
            assert (weights.parent / "model_card.json").is_file()


def test_openvino_runs_the_int8_models_fp32_layers_in_fp32_as_onnx_runtime_does():
    """On AMX / AVX512-BF16 CPUs OpenVINO would run an IR's FP32 layers in bf16; for the INT8 IRs (ONNX Runtime's
    QDQ models read by OpenVINO) that moved `accurate`'s answers off ONNX Runtime's (its two-view wrapper is FP32:
    0.7133 instead of 0.7147-0.7150 on val). The runtime compiles INT8 IRs with FP32 precision, so both agree."""
    import openvino as ov

    from fer_edge.data import read_image_folder
    from fer_edge.evaluate import predict_faces
    from fer_edge.runtime.models import classifier_path

    faces = read_image_folder(SHARED / "datasets/fer2013/val", log=None).images[::14]
    for name in ("accurate", "fast"):
        ir = load_classifier(classifier_path(name, "openvino"), "openvino", threads=1)
        assert ir.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
        a = predict_faces(ir, faces)
        b = predict_faces(load_classifier(classifier_path(name, "onnxruntime"), "onnxruntime", threads=1), faces)
        assert (a.argmax(1) == b.argmax(1)).all(), name


def test_arm_users_of_the_default_model_are_told_about_fast():
    """The default `accurate` costs a Pi 4 about 7x `fast`'s classification time (README, Raspberry Pi): `fer-edge
    run` on a camera or video says so in one line on Arm, with the default or `--model accurate`, and nowhere else."""
    from fer_edge.runtime.models import arm_speed_hint

    for model in (None, "accurate"):
        assert "--model fast" in arm_speed_hint(model, "aarch64")
        assert arm_speed_hint(model, "x86_64") is None
    assert arm_speed_hint("fast", "aarch64") is None and arm_speed_hint("my_model.onnx", "arm64") is None
