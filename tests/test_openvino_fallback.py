"""OpenVINO that compiles a model but cannot run it (as on an emulated Cortex-A72): one line, or the ONNX twin."""

from __future__ import annotations

import pytest

from conftest import MEDIA, assert_clean_error, run_cli

# Make OpenVINO's CPU plugin fail every inference with the multi-line C++ message seen on a Cortex-A72.
BREAK_OPENVINO = """
import sys
import openvino as ov

RealCore = ov.Core

class Request:
    def infer(self, *a, **k):
        raise RuntimeError("Exception from src/inference/src/cpp/infer_request.cpp:223:\\n"
                           "[CPU] Convolution node with name '/features/conv' object is not initialized\\n"
                           "  at ov::intel_cpu::Node::execute (node.cpp:512)")

class Compiled:
    def create_infer_request(self):
        return Request()

class Core(RealCore):
    def compile_model(self, *a, **k):
        return Compiled()

ov.Core = Core
"""


def _break(monkeypatch):
    import openvino as ov

    monkeypatch.setattr(ov, "Core", ov.Core)  # restored after the test
    exec(BREAK_OPENVINO, {})  # the patch above, applied in this process


def test_explicit_openvino_model_that_cannot_run_is_one_line(tiny_ir):
    p = run_cli("run", "--image", str(MEDIA / "two_people_obama_biden.jpg"), "--model", str(tiny_ir),
                python_code=BREAK_OPENVINO + "from fer_edge.cli import main\nsys.exit(main(sys.argv[1:]))")
    assert_clean_error(p, "OpenVINO cannot run classifier", "object is not initialized", "ONNX Runtime")
    assert "node.cpp" not in p.stderr and "infer_request.cpp" not in p.stderr


def test_default_model_falls_back_on_its_onnx_twin(monkeypatch, capsys):
    from fer_edge.runtime.classifier import load_classifier
    from fer_edge.runtime.errors import FerEdgeError
    from fer_edge.runtime.models import default_classifier_path

    _break(monkeypatch)
    xml = default_classifier_path("openvino")
    assert xml.suffix == ".xml"
    clf = load_classifier(xml)  # backend implied by the suffix: the shipped IR may fall back
    assert clf.backend == "onnxruntime" and clf.path.name == "accurate_int8.onnx"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OpenVINO cannot run" in err[0] and "using accurate_int8.onnx" in err[0]
    with pytest.raises(FerEdgeError, match="OpenVINO cannot run"):  # asked for OpenVINO by name: no silent switch
        load_classifier(xml, backend="openvino")
