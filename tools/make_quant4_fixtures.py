#!/usr/bin/env python3
"""Reference fixtures for bitsandbytes-compatible 4-bit quantization (tests/test_quant4.c).

A clean numpy float32 re-implementation of what bitsandbytes' CUDA kernels compute
(csrc/kernels.cu kQuantizeBlockwise / dQuantizeNF4 / dQuantizeFP4 / dQuantize<0> /
kDequantizeBlockwise; functional.py quantize_4bit, dequantize_4bit, create_dynamic_map),
written for fixed random and adversarial weight tensors. bitsandbytes itself cannot be
installed here, so this script is the independent reference the C code must match bit for bit.

What CUDA does, element by element (blocks of 64 in row-major order of W [out, in]):
- bitsandbytes is always built with nvcc --use_fast_math, so every float32 operation in its
  kernels flushes subnormal inputs and results to (sign-preserving) zero: ftz() below.
- absmax = max |x| over the block (float32); the padding of a partial block reads as 0.0.
- v = x * (1.0f / absmax): a multiplication by the float32 reciprocal. An all-zero block gives
  1/0 = inf and 0 * inf = NaN, which both decision trees send to code 0.
  (Fast math computes the reciprocal with rcp.approx, at most 1 ulp from the correctly rounded
  value; this reference - like the C code - uses the correctly rounded reciprocal.)
- NF4 / FP4 codes from the strict-'>' decision trees with float32 thresholds: the CUDA source's
  float literals, each decimal rounded once to float32 as a compiler does (lit() below; 4 NF4
  thresholds come out 1 ulp away from a decimal -> double -> float32 conversion); element 2j in
  the high nibble of byte j; an odd numel pads the last byte's low nibble with the code of the
  value 0.0 (the block's padding).
- Double quantization: offset = mean(absmax) = pairwise float32 sum (adjacent pairs, level by
  level, an odd tail element carried up) divided by the float32 block count; absmax - offset is
  quantized blockwise (256) with the signed dynamic map and dQuantize<0> (binary search, then
  the nearer neighbour by the float32 midpoint, strict comparisons). PyTorch's CUDA mean reduces
  in another order, so a GPU-made offset can differ in the last bit; checkpoints store it.
- Dequantization: table[code] * absmax (float32, flushed); nested scale = code2[q] * absmax2
  (flushed) + offset.

The 256-entry dynamic maps are produced by bitsandbytes' own create_dynamic_map algorithm with
torch.linspace in float32 (the values PyTorch's CPU kernels give on this machine).

Before writing, the script checks that dequantize(quantize(W)) stays within each format's bound
(|w - deq(w)| <= absmax * the largest half-gap of the code table, + 2 ulp of absmax, + FLT_MIN for
flushed subnormals) in every block whose reciprocal is not flushed, and reads every file back
with an independent parser. Two runs write byte-identical files.

Usage: /usr/bin/python3 tools/make_quant4_fixtures.py [output_dir]   (default tests/fixtures/quant4)
"""
import json
import os
import struct
import sys
from fractions import Fraction

try:
    import numpy as np
    import torch
except ImportError as exc:
    sys.exit(f"make_quant4_fixtures.py needs numpy and PyTorch ({exc}); on Debian: apt-get install python3-torch")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "quant4")
F32 = np.float32
FLT_MIN = F32(np.finfo(np.float32).tiny)
BLOCK = 64
NESTED_BLOCK = 256


def lit(text):
    """A C float literal (text + 'f') as nvcc and gcc read it: the decimal rounded once, to the
    nearest float32 (ties to even). np.float32(float(text)) rounds twice (decimal -> double ->
    float32) and gives another float for 4 of the 15 NF4 thresholds, which are near midpoints."""
    x = Fraction(text)
    f = F32(float(x))
    near = [np.nextafter(f, F32(-np.inf)), f, np.nextafter(f, F32(np.inf))]
    return min(near, key=lambda c: (abs(Fraction(float(c)) - x), int(np.array([c]).view(np.uint32)[0]) & 1))

# ---- code tables and thresholds, as the CUDA source spells them (float literals -> float32) ----
NF4_TABLE = [lit(v) for v in (
    "-1.0", "-0.6961928009986877", "-0.5250730514526367", "-0.39491748809814453", "-0.28444138169288635",
    "-0.18477343022823334", "-0.09105003625154495", "0.0", "0.07958029955625534", "0.16093020141124725",
    "0.24611230194568634", "0.33791524171829224", "0.44070982933044434", "0.5626170039176941",
    "0.7229568362236023", "1.0")]
FP4_MAGNITUDE = [lit(v) for v in ("0.0", "0.005208333333", "0.66666667", "1.0", "0.33333333", "0.5", "0.16666667", "0.25")]
FP4_TABLE = FP4_MAGNITUDE + [-m for m in FP4_MAGNITUDE]
NF4_THRESHOLDS = [lit(t) for t in (
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011")]
FP4_THRESHOLDS = [lit(t) for t in ("0.00260417", "0.0859375", "0.20833333", "0.29166667", "0.4166667", "0.583333", "0.8333333")]


def ftz(x):
    """CUDA fast-math: subnormal float32 values become sign-preserving zero."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.abs(x) < FLT_MIN, np.copysign(F32(0.0), x), x).astype(np.float32)


# The tree nodes of dQuantizeNF4 (path of '>' = 1 bits from the root) and of dQuantizeFP4.
NF4_NODES = {k: lit(v) for k, v in (
    ("root", "0.03979014977812767"), ("1", "0.3893125355243683"), ("11", "0.6427869200706482"),
    ("111", "0.8614784181118011"), ("110", "0.5016634166240692"), ("10", "0.2035212516784668"),
    ("101", "0.2920137718319893"), ("100", "0.1202552504837513"), ("0", "-0.33967943489551544"),
    ("01", "-0.13791173323988914"), ("011", "-0.045525018125772476"), ("010", "-0.23460740596055984"),
    ("00", "-0.6106329262256622"), ("001", "-0.4599952697753906"), ("000", "-0.8480964004993439"))}
FP4_NODES = {k: lit(v) for k, v in (
    ("root", "0.29166667"), ("1", "0.583333"), ("11", "0.8333333"), ("10", "0.4166667"),
    ("0", "0.0859375"), ("01", "0.20833333"), ("00", "0.00260417"))}


def nf4_code(x):
    """dQuantizeNF4: the decision tree literally (NaN fails every '>' and lands on 0)."""
    t = NF4_NODES
    if x > t["root"]:
        if x > t["1"]:
            if x > t["11"]:
                return 0b1111 if x > t["111"] else 0b1110
            return 0b1101 if x > t["110"] else 0b1100
        if x > t["10"]:
            return 0b1011 if x > t["101"] else 0b1010
        return 0b1001 if x > t["100"] else 0b1000
    if x > t["0"]:
        if x > t["01"]:
            return 0b0111 if x > t["011"] else 0b0110
        return 0b0101 if x > t["010"] else 0b0100
    if x > t["00"]:
        return 0b0011 if x > t["001"] else 0b0010
    return 0b0001 if x > t["000"] else 0b0000


def fp4_code(x):
    """dQuantizeFP4: sign bit when x < 0, then the tree on |x|."""
    t = FP4_NODES
    sign = 0b1000 if x < 0 else 0
    a = F32(abs(x))
    if a > t["root"]:
        if a > t["1"]:
            return (0b0011 if a > t["11"] else 0b0010) + sign
        return (0b0101 if a > t["10"] else 0b0100) + sign
    if a > t["0"]:
        return (0b0111 if a > t["01"] else 0b0110) + sign
    return (0b0001 if a > t["00"] else 0b0000) + sign


def blockwise_scale(x, block):
    """Per block: absmax (padding reads as 0.0), the flushed reciprocal, v = x * recip (flushed)."""
    n = x.size
    nblocks = -(-n // block)
    padded = np.zeros(nblocks * block, dtype=np.float32)
    padded[:n] = ftz(x.reshape(-1))
    padded = padded.reshape(nblocks, block)
    absmax = np.abs(padded).max(axis=1).astype(np.float32)
    with np.errstate(divide="ignore"):
        recip = ftz(F32(1.0) / absmax)
    with np.errstate(invalid="ignore"):
        v = ftz(padded * recip[:, None])
    return absmax, v


def quantize_4bit(w, kind):
    n = w.size
    absmax, v = blockwise_scale(w, BLOCK)
    code_of = nf4_code if kind == "nf4" else fp4_code
    codes = [code_of(F32(e)) for e in v.reshape(-1)[:n + (n & 1)]]
    packed = bytes((codes[2 * j] << 4) | codes[2 * j + 1] for j in range(len(codes) // 2))
    return packed, absmax


def dquantize(code, x):
    """dQuantize<0> (non-stochastic): binary search over the 256 sorted codes, then nearest by midpoint."""
    x = F32(ftz(x))
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = F32(-1.0), F32(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if upper_pivot == 255:
        upper = code[upper_pivot]
    if lower_pivot == 0:
        lower = code[lower_pivot]
    if x > val:
        midpoint = F32((upper + val) * F32(0.5))
        return upper_pivot if x > midpoint else pivot
    midpoint = F32((lower + val) * F32(0.5))
    return lower_pivot if x < midpoint else pivot


def pairwise_sum(a):
    a = np.asarray(a, dtype=np.float32)
    while a.size > 1:
        if a.size & 1:
            a = np.append(a, F32(0.0))
        a = (a[0::2] + a[1::2]).astype(np.float32)
    return F32(a[0]) if a.size else F32(0.0)


def double_quant(absmax, code2):
    offset = F32(pairwise_sum(absmax) / F32(absmax.size))
    a = (absmax - offset).astype(np.float32)
    absmax2, v = blockwise_scale(a, NESTED_BLOCK)
    q = bytes(dquantize(code2, F32(e)) for e in v.reshape(-1)[:a.size])
    return q, absmax2, offset


def nested_scales(q, absmax2, offset, code2):
    s = np.array([ftz(code2[c] * absmax2[b // NESTED_BLOCK]) for b, c in enumerate(q)], dtype=np.float32)
    return (s + offset).astype(np.float32)


def dequantize_4bit(packed, scales, n, kind):
    table = NF4_TABLE if kind == "nf4" else FP4_TABLE
    codes = [c for byte in packed for c in (byte >> 4, byte & 15)][:n]
    out = [ftz(table[c] * scales[i // BLOCK]) for i, c in enumerate(codes)]
    return np.array(out, dtype=np.float32)


# ---- the dynamic maps: bitsandbytes' create_dynamic_map, PyTorch float32 ----

def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2 ** total_bits
    data.sort()
    return np.array(torch.tensor(data, dtype=torch.float32).numpy(), dtype=np.float32)


# ---- test tensors ----

def f32_bits(u):
    return np.array([u], dtype=np.uint32).view(np.float32)[0]


def threshold_blocks(values):
    """Blocks whose absmax is exactly 1 (so v == x) holding every given value, its float32
    neighbours and their negatives (those within [-1, 1])."""
    probes = []
    for t in values:
        for e in (t, np.nextafter(t, F32(2)), np.nextafter(t, F32(-2))):
            probes += [F32(e), F32(-e)]
    probes = [p for p in probes if abs(p) <= 1.0]
    blocks = []
    for k in range(0, len(probes), BLOCK - 1):
        chunk = probes[k:k + BLOCK - 1]
        chunk += [F32(0.0)] * (BLOCK - 1 - len(chunk))
        blocks.append([F32(1.0) if len(blocks) % 2 == 0 else F32(-1.0)] + chunk)
    return np.array(blocks, dtype=np.float32)


def cases(rng):
    tiny = f32_bits(0x00000001)            # smallest subnormal
    sub = f32_bits(0x007FFFFF)             # largest subnormal
    out = {}
    out["random"] = ("normal(0, 0.02) weights", (rng.standard_normal((48, 80)) * 0.02).astype(np.float32))
    out["odd"] = ("7x13: odd numel, partial last block", rng.standard_normal((7, 13)).astype(np.float32))
    zeros = (rng.standard_normal((6, 64)) * 0.5).astype(np.float32)
    zeros[1] = 0.0
    zeros[3] = -0.0
    zeros[4, ::2] = -0.0
    zeros[4, 1::2] = 0.0
    out["zero_blocks"] = ("all-zero blocks (+0, -0, mixed) between random ones", zeros)
    outlier = (rng.standard_normal((4, 64)) * 0.01).astype(np.float32)
    outlier[1, 17] = 100.0
    outlier[2, 63] = -3.0e4
    out["outlier"] = ("a single outlier per block", outlier)
    ties = np.concatenate([threshold_blocks(NF4_THRESHOLDS + NF4_TABLE),
                           threshold_blocks(FP4_THRESHOLDS + FP4_MAGNITUDE)])
    out["ties"] = ("values exactly at, just above and just below every threshold and code (absmax 1)", ties)
    den = np.zeros((4, 64), dtype=np.float32)
    den[0] = np.linspace(-1, 1, 64, dtype=np.float32) * sub            # only subnormals: absmax flushes to 0
    den[1] = rng.standard_normal(64).astype(np.float32)
    den[1, ::3] = [tiny, -tiny, sub, -sub] * 5 + [tiny, -tiny]          # subnormals among normals
    den[2] = rng.standard_normal(64).astype(np.float32) * F32(2e-38)    # products underflow, absmax near FLT_MIN
    den[2, 5] = FLT_MIN
    den[3] = rng.standard_normal(64).astype(np.float32) * F32(3e37)     # reciprocal of absmax is subnormal -> 0
    den[3, 0] = F32(2.5e38)
    out["denormal"] = ("subnormal inputs, underflowing products, a subnormal reciprocal", den)
    negz = rng.standard_normal((3, 64)).astype(np.float32)
    negz[:, ::4] = -0.0
    out["negzero"] = ("negative zeros among normal values", negz)
    out["large"] = ("131x129 = 16899: 265 blocks -> two nested blocks, odd numel",
                    (rng.standard_normal((131, 129)) * 0.05).astype(np.float32))
    out["one_block"] = ("a single block: absmax - offset is 0, nested absmax2 = 0", rng.standard_normal((1, 40)).astype(np.float32))
    return out


def max_half_gap(table):
    t = sorted(set(float(v) for v in table))
    return max((b - a) / 2 for a, b in zip(t, t[1:]))


def check_bound(w, deq, absmax, kind):
    """|w - deq| <= absmax * max half-gap, + 2 ulp of absmax for the float32 roundings and FLT_MIN
    for flushed subnormals; blocks whose reciprocal flushes to zero (absmax > 1/FLT_MIN) are exempt."""
    gap = max_half_gap(NF4_TABLE if kind == "nf4" else FP4_TABLE)
    flat = w.reshape(-1).astype(np.float64)
    for b in range(absmax.size):
        a = float(absmax[b])
        if a > 0.0 and 1.0 / a < float(FLT_MIN):
            continue
        seg = slice(b * BLOCK, min(flat.size, (b + 1) * BLOCK))
        err = np.abs(flat[seg] - deq[seg].astype(np.float64)).max()
        bound = a * gap + 2 * float(np.spacing(F32(a))) + float(FLT_MIN)
        if not err <= bound:
            sys.exit(f"{kind} bound violated in block {b}: max err {err} > {bound}")


# ---- safetensors writer (the Rust library's layout) and an independent reader ----

DTYPE_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]


def serialize(items, metadata):
    order = sorted(items.items(), key=lambda kv: (-DTYPE_ORDER.index(kv[1][0]), kv[0].encode("utf-8")))
    header = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape, data) in order:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(d for _, (_, _, d) in order)


def read_back(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__")
    data = blob[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}


def f32(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return ("F32", list(a.shape), a.astype("<f4").tobytes())


def u8(b):
    return ("U8", [len(b)], bytes(b))


def case_items(w, code2, store_plain_dequant):
    n = w.size
    items = {"input": f32(w)}
    for kind in ("nf4", "fp4"):
        packed, absmax = quantize_4bit(w, kind)
        deq = dequantize_4bit(packed, absmax, n, kind)
        check_bound(w, deq, absmax, kind)
        q, absmax2, offset = double_quant(absmax, code2)
        deq2 = dequantize_4bit(packed, nested_scales(q, absmax2, offset, code2), n, kind)
        items[f"{kind}.packed"] = u8(packed)
        items[f"{kind}.absmax"] = f32(absmax)
        items[f"{kind}.nested.qabsmax"] = u8(q)
        items[f"{kind}.nested.absmax2"] = f32(absmax2)
        items[f"{kind}.nested.offset"] = f32(np.array([offset]))
        items[f"{kind}.nested.dequant"] = f32(deq2.reshape(w.shape))
        if store_plain_dequant:
            items[f"{kind}.dequant"] = f32(deq.reshape(w.shape))
    return items


def dq_probe_inputs(code):
    """Every code, every midpoint between neighbours and their float32 neighbours, and the edges."""
    xs = [F32(c) for c in code]
    for a, b in zip(code[:-1], code[1:]):
        m = F32((a + b) * F32(0.5))
        xs += [m, np.nextafter(m, F32(2)), np.nextafter(m, F32(-2))]
    xs += [F32(v) for v in (1.5, -1.5, 1.0, -1.0, 0.0, -0.0, 1e-30, -1e-30, 4e-39, -4e-39, np.inf, -np.inf, np.nan)]
    return np.array(xs, dtype=np.float32)


def maps_items(signed, unsigned):
    items = {"dynamic_signed": f32(signed), "dynamic_unsigned": f32(unsigned),
             "nf4_table": f32(np.array(NF4_TABLE)), "fp4_table": f32(np.array(FP4_TABLE))}
    for name, code in (("signed", signed), ("unsigned", unsigned)):
        xs = dq_probe_inputs(code)
        items[f"dq.{name}.input"] = f32(xs)
        items[f"dq.{name}.code"] = u8(bytes(dquantize(code, x) for x in xs))
    return items


def write(path, items, metadata):
    blob = serialize(items, metadata)
    back = read_back(blob)
    assert set(back) == set(items)
    for k, (_, _, d) in items.items():
        assert back[k] == d, k
    with open(path, "wb") as f:
        f.write(blob)
    print(f"wrote {path} ({len(blob)} bytes)")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    signed, unsigned = create_dynamic_map(True), create_dynamic_map(False)
    assert signed[127] == 0.0 and signed[255] == 1.0 and unsigned[0] == 0.0 and unsigned[255] == 1.0
    assert np.all(np.diff(signed) > 0) and np.all(np.diff(unsigned) > 0)
    write(os.path.join(out, "maps.safetensors"), maps_items(signed, unsigned),
          {"format": "pt", "torch": torch.__version__,
           "note": "create_dynamic_map(signed/unsigned) in float32 via torch.linspace; dQuantize<0> probes"})
    rng = np.random.default_rng(20240604)
    for name, (desc, w) in cases(rng).items():
        items = case_items(w, signed, store_plain_dequant=(name != "large"))
        write(os.path.join(out, f"{name}.safetensors"), items, {"format": "pt", "case": desc})


if __name__ == "__main__":
    main()
