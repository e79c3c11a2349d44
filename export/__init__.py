"""fer_edge.export: checkpoint to ONNX / OpenVINO IR conversion (needs the [export] extra)."""
