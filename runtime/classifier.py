"""Emotion classifiers on ONNX Runtime or OpenVINO, described by their embedded ``fer_edge`` metadata.

``predict(batch)`` takes a float32 NCHW batch (already normalised) and returns class probabilities
in a buffer the classifier owns and reuses: copy what you keep.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np

from .errors import FerEdgeError
from .metadata import METADATA_KEY, ModelMeta
from .unsigned_weights import has_qdq, unsigned_weights

BACKENDS = ("onnxruntime", "openvino")
MAX_BATCH = 64
BOUND_BUFFERS = 32  # (buffer, batch size) pairs whose backend binding is kept for reuse
# OpenVINO: in frame loops, batch sizes 1..STATIC_BATCHES get a static-shape compilation of their own. With one
# dynamic-batch model a loop whose face count changes (2, 3, 2, 1 ...) pays a re-plan of the kernels at every
# change: on a Zen 4 core the shipped model took 1.90 ms a call for batches alternating 2/3/2/3/1 on the dynamic
# model and 1.19 ms on static ones (python -m fer_edge.benchmarks.static_batches, benchmarks/results/static-batches/).
STATIC_BATCHES = 4


def backend_for(path: Path, backend: str | None) -> str:
    """The backend that runs ``path``: ``--backend`` if given, else from the suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".onnx", ".xml"):
        raise FerEdgeError(f"{path}: unknown classifier format '{suffix}' (expected an .onnx or OpenVINO .xml file)")
    if backend is None:
        return "openvino" if suffix == ".xml" else "onnxruntime"
    if backend not in BACKENDS:
        raise FerEdgeError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    if backend == "onnxruntime" and suffix == ".xml":
        raise FerEdgeError(f"{path}: ONNX Runtime cannot run an OpenVINO IR; use --backend openvino")
    return backend


def softmax_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.subtract(x, x.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


class EmotionClassifier:
    """Common part: metadata, output buffer, probability conversion, batching limits."""

    backend = "base"

    def __init__(self, path: Path, meta: ModelMeta, fixed_batch: int | None):
        self.path = path
        self.meta = meta
        self.fixed_batch = fixed_batch  # 1 when the model was exported with a static batch of one
        self._probs = np.empty((MAX_BATCH, len(meta.classes)), np.float32)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def prepare_stream(self) -> None:
        """A frame loop is about to call :meth:`predict` many times with small batches of varying size (a backend
        may prepare for that; the default does nothing)."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (n, classes) for a contiguous float32 batch (n, C, H, W); n <= MAX_BATCH."""
        n = batch.shape[0]
        if n > MAX_BATCH:
            raise ValueError(f"predict() takes at most {MAX_BATCH} faces per call, got {n}")
        out = self._probs[:n]
        if n == 0:
            return out
        if self.fixed_batch == 1:
            for i in range(n):
                self._finish(self._run(batch[i : i + 1]), out[i : i + 1])
        else:
            self._finish(self._run(batch), out)
        return out

    @staticmethod
    def _bound(cache: dict, batch: np.ndarray, make):
        """The backend object bound to ``batch``'s memory, made once per (buffer address, batch size) and reused;
        the cache keeps the buffer alive so that its address cannot be recycled while bound."""
        key = (batch.ctypes.data, batch.shape[0])
        entry = cache.get(key)
        if entry is None:
            if not batch.flags.c_contiguous or batch.dtype != np.float32:
                raise ValueError("predict() needs a C-contiguous float32 batch")
            if len(cache) >= BOUND_BUFFERS:
                cache.clear()
            entry = cache[key] = (make(batch), batch)
        return entry[0]

    def _finish(self, raw: np.ndarray, out: np.ndarray) -> None:
        raw = raw.reshape(out.shape)
        if self.meta.output == "logits":
            softmax_into(raw, out)
        else:
            np.copyto(out, raw)


def _fixed(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def x86_without_vnni() -> bool:
    """True on an x86 CPU known to lack VNNI (AVX2-only: most laptops before 2021, AMD Zen 1-3), where INT8 dot
    products saturate; False elsewhere, and where the CPU's flags cannot be read (no /proc/cpuinfo)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "x64"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), None)
    if flags is None:
        return False
    return not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


class OnnxRuntimeClassifier(EmotionClassifier):
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # no busy-waiting between calls: spinning ORT threads starve OpenCV's face detector in the frame loop
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        # On x86 without VNNI ORT's fused kernels for int8 weights (U8S8) sum pairs of products in 16 bits
        # (vpmaddubsw) and saturate (measured on an AVX2 EPYC: 92% top-1 agreement with the exact arithmetic, a
        # point of val accuracy lost). There INT8 models get their weights as uint8 (lossless; exact 32-bit
        # kernels, as on Arm: see unsigned_weights), or, where that rewrite does not apply, run their QDQ pairs as
        # float arithmetic. ``exact_qdq``: "unsigned weights", "float QDQ" or None (fused kernels as they are, or
        # nothing quantized).
        self.exact_qdq: str | None = None
        model: str | bytes = str(path)
        if x86_without_vnni():
            quantized = False
            try:
                data = path.read_bytes()
                model = unsigned_weights(data) or model
                quantized = isinstance(model, bytes) or has_qdq(data)
            except (OSError, ValueError, IndexError):  # unreadable or not protobuf: the load below says so
                pass
            if isinstance(model, bytes):
                self.exact_qdq = "unsigned weights"
            elif quantized:
                self.exact_qdq = "float QDQ"
                opts.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for bad files
            raise FerEdgeError(f"cannot load classifier {path}: not a valid ONNX model ({_first_line(e)})") from e
        where = f"classifier {path}"
        meta = ModelMeta.from_json(self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), where)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise FerEdgeError(f"{where}: expected one image input, found {len(inputs)}")
        if inputs[0].type != "tensor(float)":
            raise FerEdgeError(f"{where}: input type {inputs[0].type} is not float32")
        meta.check_io(list(inputs[0].shape), list(outputs[0].shape), where)
        super().__init__(path, meta, _fixed(inputs[0].shape[0]))
        self._in, self._out = inputs[0].name, outputs[0].name
        self._raw = np.empty((MAX_BATCH, len(meta.classes)), np.float32)
        self._bindings: dict[tuple[int, int], tuple] = {}

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run on ``batch`` in place through an I/O binding to it and to the output buffer."""
        raw = self._raw[: batch.shape[0]]

        def bind(b: np.ndarray):
            binding = self.session.io_binding()
            binding.bind_cpu_input(self._in, b)
            binding.bind_output(self._out, "cpu", 0, np.float32, list(raw.shape), raw.ctypes.data)
            return binding

        self.session.run_with_iobinding(self._bound(self._bindings, batch, bind))
        return raw


class OpenVinoCannotRun(FerEdgeError):
    """OpenVINO loads and compiles the model but cannot execute it on this CPU."""


class OpenVinoClassifier(EmotionClassifier):
    backend = "openvino"

    def __init__(self, path: Path, threads: int | None = None, precision_hint: str | None = None):
        """``precision_hint``: None lets OpenVINO choose for an FP32 model (bf16 on CPUs with AMX/AVX512-BF16) and
        runs an INT8 model's FP32 layers in FP32, as ONNX Runtime does (in bf16 the shipped ``accurate``'s FP32
        two-view wrapper moved 5 of 3,589 val answers); ``"f32"`` forces FP32 (used to verify an exported IR)."""
        try:
            import openvino as ov
        except ImportError:
            raise FerEdgeError(f"{path}: running it needs OpenVINO, which is not installed (pip install openvino)")
        core = ov.Core()
        where = f"classifier {path}"
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise FerEdgeError(f"cannot load classifier {path}: not a valid model for OpenVINO ({_first_line(e)})")
        meta = ModelMeta.from_json(_ov_metadata(model, path), where)
        if len(model.inputs) != 1:
            raise FerEdgeError(f"{where}: expected one image input, found {len(model.inputs)}")
        in_shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
        out_shape = [d.get_length() if d.is_static else None for d in model.outputs[0].get_partial_shape()]
        meta.check_io(in_shape, out_shape, where)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision_hint is None and meta.extra.get("precision") == "int8":
            precision_hint = "f32"
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as e:
            raise FerEdgeError(f"cannot compile classifier {path} for the CPU ({_first_line(e)})") from e
        super().__init__(path, meta, in_shape[0])
        self._ov = ov
        self._request = self.compiled.create_infer_request()
        self._tensors: dict[tuple[int, int], tuple] = {}
        self._static: dict[int, object] = {}  # batch size -> infer request of a static-shape compilation
        self._compile_args = (core, model, config) if in_shape[0] is None and STATIC_BATCHES else None
        # Some CPUs compile a model that then fails on every inference (e.g. INT8 convolutions on a Cortex-A72:
        # "Convolution node ... object is not initialized"): find out now, in one line, not in the frame loop.
        try:
            self._request.infer({0: np.zeros((1, meta.channels, *meta.input_size), np.float32)})
        except Exception as e:
            raise OpenVinoCannotRun(f"OpenVINO cannot run classifier {path} on this CPU ({_first_line(e)}); run the "
                                    "model's .onnx export on ONNX Runtime instead") from e

    def prepare_stream(self) -> None:
        """Compile batch sizes 1..STATIC_BATCHES with static shapes (once; about 0.2 s each for the shipped
        accurate model on a Zen 4 core), so that a frame loop's varying face counts never re-plan the dynamic
        model; larger batches keep it. Image runs skip this: one call per image gains nothing from it."""
        if self._compile_args is None or self._static:
            return
        core, model, config = self._compile_args
        shape = [d.get_length() for d in model.inputs[0].get_partial_shape()[1:]]
        try:
            for n in range(1, STATIC_BATCHES + 1):
                m = model.clone()
                m.reshape([n, *shape])
                self._static[n] = core.compile_model(m, "CPU", config).create_infer_request()
        except Exception:  # the dynamic model still serves every batch size
            pass

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run on ``batch`` in place through an ov.Tensor sharing its memory (on the static-shape compilation of
        its size when :meth:`prepare_stream` made one)."""
        tensor = self._bound(self._tensors, batch, lambda b: self._ov.Tensor(b, shared_memory=True))
        request = self._static.get(batch.shape[0], self._request)
        request.set_input_tensor(tensor)
        request.infer()
        return request.get_output_tensor(0).data


def _ov_metadata(model, path: Path) -> str | None:
    """The fer_edge JSON from an IR's rt_info, or from an ONNX file's metadata_props."""
    if model.has_rt_info([METADATA_KEY]):
        return str(model.get_rt_info([METADATA_KEY]).astype(str))
    if path.suffix.lower() == ".onnx":
        for key in (["framework", METADATA_KEY], ["model_info", METADATA_KEY]):
            if model.has_rt_info(key):
                return str(model.get_rt_info(key).astype(str))
        try:  # fall back on ONNX Runtime's reader, which is always installed
            import onnxruntime as ort

            s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return s.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        except Exception:
            return None
    return None


def _first_line(e: Exception) -> str:
    """The message of ``e`` in one line: OpenVINO's C++ source locations ("Exception from src/...:") skipped."""
    text = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    said = [ln for ln in text if not ln.startswith("Exception from ")]
    return (said or text or [type(e).__name__])[0][:200]


def load_classifier(path: str | os.PathLike, backend: str | None = None, threads: int | None = None,
                    precision_hint: str | None = None) -> EmotionClassifier:
    """Open a classifier file (.onnx or OpenVINO .xml) on the chosen or implied backend.

    ``precision_hint`` ("f32") applies to OpenVINO only: see :class:`OpenVinoClassifier`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FerEdgeError(f"classifier file {p} does not exist")
    kind = backend_for(p, backend)
    if kind == "openvino":
        if p.suffix.lower() == ".xml" and not p.with_suffix(".bin").is_file():
            raise FerEdgeError(f"classifier {p}: its weights file {p.with_suffix('.bin').name} is missing")
        try:
            return OpenVinoClassifier(p, threads, precision_hint)
        except OpenVinoCannotRun as e:
            onnx = p.with_suffix(".onnx")
            if backend is not None or not _is_packaged(p) or not onnx.is_file():
                raise
            # the shipped default model: fall back on its ONNX twin, and say so in one line
            print(f"fer-edge: {e}; using {onnx.name} on ONNX Runtime", file=sys.stderr, flush=True)
            p = onnx
    return OnnxRuntimeClassifier(p, threads)


def _is_packaged(p: Path) -> bool:
    """Whether ``p`` is one of the classifier files shipped inside the package."""
    from importlib import resources

    try:
        return p.resolve().parent == Path(str(resources.files("fer_edge") / "assets")).resolve()
    except (ModuleNotFoundError, OSError):
        return False
