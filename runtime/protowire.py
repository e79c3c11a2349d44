"""Just enough of the protobuf wire format to edit ONNX files in memory without the ``onnx`` package."""

from __future__ import annotations

LEN = 2  # wire type of length-delimited fields


def varint(buf: memoryview, i: int) -> tuple[int, int]:
    """The varint at ``buf[i]`` and the position after it."""
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def enc_varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 values are ten-byte two's complement varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(buf: memoryview) -> list[tuple[int, int, object, bytes]]:
    """(field number, wire type, value, the field's encoded bytes) of one message, in order."""
    out, i = [], 0
    while i < len(buf):
        start = i
        key, i = varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            value, i = varint(buf, i)
        elif wt == 1:
            value, i = buf[i : i + 8], i + 8
        elif wt == LEN:
            n, i = varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wt == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        if i > len(buf):
            raise ValueError("truncated protobuf message")
        out.append((field, wt, value, buf[start:i]))
    return out


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field (a message, string or bytes)."""
    return enc_varint(field << 3 | LEN) + enc_varint(len(payload)) + payload
