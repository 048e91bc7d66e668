#!/usr/bin/env python3
"""Reference safetensors file for tests/test_safetensors.c.

Writes tests/fixtures/safetensors/dtypes.safetensors: one tensor of every dtype peftc handles,
F16 and BF16 bit patterns that cover zeros, subnormals, normals, extremes, infinities and NaN,
and next to each of them ("<name>.f32") the float32 values PyTorch converts them to. The
container is written by a hand-rolled writer that follows the Rust safetensors library
(safetensors/src/tensor.rs `prepare`): tensors ordered by dtype descending in the library's enum
order, then by name bytewise; compact JSON header with "__metadata__" first; header padded with
spaces to a multiple of 8; u64 little-endian header length. The C tests check that peftc's reader
converts like PyTorch and that peftc's writer reproduces this file byte for byte.

Usage: /usr/bin/python3 tools/make_safetensors_fixture.py [output_path]
"""
import json
import os
import struct
import sys

try:
    import torch
except ImportError as exc:
    sys.exit(f"make_safetensors_fixture.py needs PyTorch ({exc}); on Debian: apt-get install python3-torch")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "safetensors", "dtypes.safetensors")

# The Rust Dtype enum order, restricted to the dtypes peftc supports.
DTYPE_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]

F16_BITS = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000, 0x7BFF,
            0x7C00, 0xFC00, 0x7E00, 0x3555, 0x5640, 0xB2A3, 0x1234, 0xFBFF]
BF16_BITS = [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x3F80, 0xC0A0,
             0x7F7F, 0x7F80, 0xFF80, 0x7FC0, 0x3EAB, 0x4049, 0xBF00, 0x1234]


def bits_to_tensor(bits, dtype):
    signed = [b - 0x10000 if b >= 0x8000 else b for b in bits]
    return torch.tensor(signed, dtype=torch.int16).view(dtype)


def f32_bytes(t):
    return struct.pack(f"<{t.numel()}f", *t.flatten().tolist())


def tensors():
    f16 = bits_to_tensor(F16_BITS, torch.float16).reshape(2, 8)
    bf16 = bits_to_tensor(BF16_BITS, torch.bfloat16)
    u16 = struct.pack("<2H", 1, 0xFFFF)
    return {
        "f16": ("F16", [2, 8], struct.pack("<16H", *F16_BITS)),
        "f16.f32": ("F32", [2, 8], f32_bytes(f16.float())),
        "bf16": ("BF16", [16], struct.pack("<16H", *BF16_BITS)),
        "bf16.f32": ("F32", [16], f32_bytes(bf16.float())),
        "layer.10": ("F32", [1], struct.pack("<f", 10.0)),
        "layer.2": ("F32", [1], struct.pack("<f", 2.0)),
        "Z.upper": ("F32", [], struct.pack("<f", -1.5)),
        "\u00e9.bias": ("F32", [2], struct.pack("<2f", 0.5, 0.25)),
        'quote"back\\slash\x01tab\t': ("F32", [0], b""),
        "ids": ("I64", [3], struct.pack("<3q", 0, -1, 2**40)),
        "u64": ("U64", [1], struct.pack("<Q", 2**64 - 1)),
        "f64": ("F64", [2], struct.pack("<2d", 1.0 / 3.0, -2.5)),
        "u32": ("U32", [1], struct.pack("<I", 0xDEADBEEF)),
        "i32": ("I32", [2, 1], struct.pack("<2i", -7, 7)),
        "u16": ("U16", [2], u16),
        "i16": ("I16", [1], struct.pack("<h", -300)),
        "i8": ("I8", [2], struct.pack("<2b", -128, 127)),
        "u8": ("U8", [3], bytes([0, 128, 255])),
        "mask": ("BOOL", [3], bytes([1, 0, 1])),
    }


def serialize(items, metadata):
    order = sorted(items.items(), key=lambda kv: (-DTYPE_ORDER.index(kv[1][0]), kv[0].encode("utf-8")))
    header = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape, data) in order:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(data for _, (_, _, data) in order)


def check(blob, items):
    """Reads the file back with an independent minimal parser."""
    n = struct.unpack("<Q", blob[:8])[0]
    assert n % 8 == 0
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    assert header.pop("__metadata__") == {"format": "pt"}
    assert set(header) == set(items)
    for name, info in header.items():
        b, e = info["data_offsets"]
        assert data[b:e] == items[name][2], name
    assert sum(len(v[2]) for v in items.values()) == len(data)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    items = tensors()
    blob = serialize(items, {"format": "pt"})
    check(blob, items)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(blob)
    print(f"wrote {out} ({len(blob)} bytes)")


if __name__ == "__main__":
    main()
