"""The ``fer_edge`` model card that travels inside every classifier file and training checkpoint.

It is stored as a JSON string under the metadata key ``fer_edge``: ONNX ``metadata_props`` and
OpenVINO ``rt_info``. The runtime reads everything it needs from it and hard-codes nothing.
:class:`ModelMeta` is the one schema: training writes its checkpoints' cards with it, export writes the
files' metadata with it, the runtime reads them with it. ``schema`` is its version tag (absent = 1).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import FerEdgeError

METADATA_KEY = "fer_edge"
OUTPUT_KINDS = ("logits", "probs")
COLOR_MODES = ("gray", "bgr", "rgb")
# Negative margins shrink the square around a detector box: FER2013's crops are tighter than the square on
# the longest side of a YuNet / res10 box (measured by `fer-edge benchmark` on pasted faces).
MIN_CROP_MARGIN = -0.25
SCHEMA_KEY = "schema"
SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("classes", "input_size", "channels", "mean", "std", "crop_margin", "output")
MAX_INPUT_SIDE = 4096


@dataclass(frozen=True)
class ModelMeta:
    """What the runtime must know to feed a classifier and read its output."""

    classes: tuple[str, ...]
    input_size: tuple[int, int]  # (H, W)
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_margin: float
    output: str = "logits"
    color: str = "gray"  # how a BGR frame becomes the model's channels (gray is replicated for 3)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model") -> ModelMeta:
        """Validate a decoded ``fer_edge`` object; raise FerEdgeError naming ``where``."""
        if not isinstance(d, dict):
            raise FerEdgeError(f"{where}: the '{METADATA_KEY}' metadata is not a JSON object")
        version = d.get(SCHEMA_KEY, 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FerEdgeError(f"{where}: the '{METADATA_KEY}' metadata has an invalid '{SCHEMA_KEY}' tag {version!r}")
        if version > SCHEMA_VERSION:
            raise FerEdgeError(f"{where}: its '{METADATA_KEY}' metadata is schema {version}, newer than this fer-edge "
                               f"reads ({SCHEMA_VERSION}); upgrade fer-edge")
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        if missing:
            raise FerEdgeError(f"{where}: the '{METADATA_KEY}' metadata lacks {', '.join(missing)}")
        try:
            classes = tuple(str(c) for c in d["classes"])
            input_size = tuple(int(v) for v in d["input_size"])
            channels = int(d["channels"])
            mean = tuple(float(v) for v in d["mean"])
            std = tuple(float(v) for v in d["std"])
            crop_margin = float(d["crop_margin"])
            output = str(d["output"])
            color = str(d.get("color", "gray"))
        except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(Infinity)
            raise FerEdgeError(f"{where}: the '{METADATA_KEY}' metadata has a field of the wrong type ({e})")
        problems = []
        if len(classes) < 2 or len(set(classes)) != len(classes):
            problems.append("'classes' must list at least two distinct names")
        if len(input_size) != 2 or not all(8 <= v <= MAX_INPUT_SIDE for v in input_size):
            problems.append(f"'input_size' must be [H, W] with sides from 8 to {MAX_INPUT_SIDE}")
        if channels not in (1, 3):
            problems.append("'channels' must be 1 or 3")
        if len(mean) != channels or len(std) != channels:
            problems.append("'mean' and 'std' must have one value per channel")
        if not all(math.isfinite(v) for v in (*mean, *std, crop_margin)):
            problems.append("'mean', 'std' and 'crop_margin' must be finite numbers")
        if any(s <= 0 for s in std):
            problems.append("'std' values must be positive")
        if not MIN_CROP_MARGIN <= crop_margin <= 1.0:
            problems.append(f"'crop_margin' must lie in [{MIN_CROP_MARGIN}, 1]")
        if output not in OUTPUT_KINDS:
            problems.append(f"'output' must be one of {OUTPUT_KINDS}")
        if color not in COLOR_MODES or (channels == 1 and color != "gray"):
            problems.append(f"'color' must be one of {COLOR_MODES} ('gray' for 1 channel)")
        if problems:
            raise FerEdgeError(f"{where}: invalid '{METADATA_KEY}' metadata: {'; '.join(problems)}")
        extra = {k: v for k, v in d.items() if k not in META_FIELDS and k != SCHEMA_KEY}
        return cls(classes, input_size, channels, mean, std, crop_margin, output, color, extra)

    @classmethod
    def from_json(cls, text: str | None, where: str = "model") -> ModelMeta:
        if text is None:
            raise FerEdgeError(
                f"{where} carries no '{METADATA_KEY}' metadata; export it with 'fer-edge export' "
                "so the runtime knows its classes, input size and normalisation"
            )
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, TypeError) as e:
            raise FerEdgeError(f"{where}: the '{METADATA_KEY}' metadata is not valid JSON ({e.msg})")
        return cls.from_dict(d, where)

    def with_extra(self, **extra: Any) -> ModelMeta:
        """A copy with ``extra`` fields (provenance, precision, ...) added or replaced."""
        return replace(self, extra={**self.extra, **extra})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the schema tag, the runtime fields and the extra fields."""
        d = asdict(self)
        extra = d.pop("extra")
        d[SCHEMA_KEY] = SCHEMA_VERSION
        d["classes"] = list(self.classes)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d.update(extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def check_io(self, in_shape: list, out_shape: list | None, where: str) -> None:
        """Reject a model whose input/output shape contradicts the metadata (None/str dims are dynamic)."""

        def fixed(v: Any) -> int | None:
            return v if isinstance(v, int) and v > 0 else None

        expect = (None, self.channels, *self.input_size)
        if len(in_shape) != 4:
            raise FerEdgeError(
                f"{where}: input has rank {len(in_shape)} but the metadata describes an NCHW "
                f"image batch [N, {self.channels}, {self.input_size[0]}, {self.input_size[1]}]"
            )
        for got, want in zip(in_shape[1:], expect[1:]):
            if fixed(got) is not None and got != want:
                raise FerEdgeError(
                    f"{where}: input shape {list(in_shape)} contradicts the metadata "
                    f"(channels={self.channels}, input_size={list(self.input_size)})"
                )
        if out_shape is not None:
            if len(out_shape) != 2 or (fixed(out_shape[1]) is not None and out_shape[1] != len(self.classes)):
                raise FerEdgeError(
                    f"{where}: output shape {list(out_shape)} does not match the "
                    f"{len(self.classes)} classes in its metadata"
                )


META_FIELDS = tuple(f.name for f in fields(ModelMeta) if f.name != "extra")  # what the runtime reads
