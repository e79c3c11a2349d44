"""INT8 ONNX weights stored as uint8, for ONNX Runtime on x86 CPUs without VNNI.

ONNX Runtime's fused x86 kernels for signed 8-bit weights (U8S8) sum pairs of products in 16 bits
(``vpmaddubsw``), which saturates on CPUs without VNNI. The same weights stored unsigned (``w + 128`` with zero
point ``z + 128``: the same real values, lossless) take kernels that accumulate exactly in 32 bits, like the Arm
kernels the shipped ``.onnx`` is made for. On the val split this path agrees with emulated Cortex-A72/A76 on
99.67% of faces, against 98.94% for running the QDQ pairs as float arithmetic (``session.disable_quant_qdq``),
and costs less time than that (``benchmarks/results/aarch64/``, README "INT8 ONNX on x86 CPUs without VNNI").

The rewrite works on the protobuf wire format, so the runtime needs no ``onnx`` package: only the initializers
that feed a ``DequantizeLinear`` as its data (and their zero points) change; every other byte is kept.
"""

from __future__ import annotations

import numpy as np

from .protowire import LEN as _LEN
from .protowire import enc_varint as _enc_varint
from .protowire import fields as _fields
from .protowire import ld as _ld
from .protowire import varint as _varint

INT8, UINT8 = 3, 2  # TensorProto.DataType
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _strings(fields, number: int) -> list[str]:
    return [bytes(v).decode() for f, wt, v, _ in fields if f == number and wt == _LEN]


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _to_unsigned(tensor: memoryview) -> bytes:
    """A TensorProto of INT8 values as UINT8 values + 128."""
    out = bytearray()
    for f, wt, v, raw in _fields(tensor):
        if f == 2 and wt == 0:  # data_type
            out += _enc_varint(2 << 3) + _enc_varint(UINT8)
        elif f == 9 and wt == _LEN:  # raw_data
            out += _ld(9, (np.frombuffer(v, np.uint8) ^ 0x80).tobytes())
        elif f == 5:  # int32_data, packed or one value per field
            vals = []
            if wt == _LEN:
                i = 0
                while i < len(v):
                    x, i = _varint(v, i)
                    vals.append(x)
            else:
                vals.append(v)
            payload = b"".join(_enc_varint(_signed(x) + 128) for x in vals)
            out += _ld(5, payload)
        else:
            out += raw
    return bytes(out)


def unsigned_weights(model: bytes) -> bytes | None:
    """``model`` (a serialized ONNX ModelProto) with the INT8 weights of its DequantizeLinear nodes stored as
    UINT8, or None when it has none (or shares a weight's tensors with other nodes, or keeps tensors in external
    files: left alone)."""
    parsed = _parse(model)
    if parsed is None:
        return None
    top, graph_at, graph, nodes = parsed
    inits: dict[str, int] = {}  # name -> position in graph of every INT8 initializer
    for k, (f, wt, v, _) in enumerate(graph):
        if f == 5 and wt == _LEN:
            t = _fields(v)
            if any(ff == 14 and vv == 1 for ff, _, vv, _ in t):  # data_location EXTERNAL: the file alone is not all
                return None
            if any(ff == 2 and ww == 0 and vv == INT8 for ff, ww, vv, _ in t):
                name = _strings(t, 8)
                if name:
                    inits[name[0]] = k
    change: set[str] = set()
    for op, ins in nodes:
        if op == ["DequantizeLinear"] and ins and ins[0] in inits:
            if len(ins) < 3 or ins[2] not in inits:  # an implied or computed zero point would not move with it
                return None
            change.update((ins[0], ins[2]))
    if not change:
        return None
    for op, ins in nodes:  # a changed tensor read by anything but a weight's DequantizeLinear would change its meaning
        weight_dq = op == ["DequantizeLinear"] and ins and ins[0] in change
        if any(x in change for x in (ins if not weight_dq else ins[1:2] + ins[3:])):
            return None
    at = {inits[name] for name in change}
    new_graph = b"".join(_ld(5, _to_unsigned(v)) if k in at else raw for k, (_, _, v, raw) in enumerate(graph))
    return b"".join(_ld(7, new_graph) if k == graph_at else raw for k, (_, _, _, raw) in enumerate(top))


def has_qdq(model: bytes) -> bool:
    """Whether ``model`` (a serialized ONNX ModelProto) quantizes or dequantizes anything in its graph."""
    parsed = _parse(model)
    return parsed is not None and any(op and op[0] in QDQ_OPS for op, _ in parsed[3])


def _parse(model: bytes) -> tuple[list, int, list, list[tuple[list[str], list[str]]]] | None:
    """(model fields, index of the graph among them, graph fields, (op_type, inputs) of every node), or None
    without exactly one graph. Fields are views, not copies, of ``model``'s bytes."""
    top = _fields(memoryview(model))
    graph_at = [k for k, (f, wt, _, _) in enumerate(top) if f == 7 and wt == _LEN]
    if len(graph_at) != 1:
        return None
    graph = _fields(top[graph_at[0]][2])
    nodes = [(_strings(n, 4), _strings(n, 1)) for n in (_fields(v) for f, wt, v, _ in graph if f == 1 and wt == _LEN)]
    return top, graph_at[0], graph, nodes
