#!/usr/bin/python3
"""The PyTorch peer of `bench_llama lora`: the same TinyLlama-1.1B-shaped LoRA training step, timed the same way.

    /usr/bin/python3 bench/torch_llama_lora.py [fp32|bf16] [steps]

LlamaForCausalLM as transformers' modeling_llama.py (eager attention, GQA by repeat_kv, RMSNorm in fp32,
rotary embeddings with theta 10000, SiLU-gated MLP, untied lm_head, loss on labels = input_ids shifted by one)
with the shape of TinyLlama-1.1B (hidden 2048, intermediate 5632, 22 layers, 32 heads, 4 kv heads,
vocab 32000, rms_norm_eps 1e-5) and random N(0, 0.02) weights (not peftc's: the values do not change the time).
PEFT's LoRA (y = W x + s * B(A(dropout(x))), r 16, alpha 32, dropout 0.05) on q_proj, k_proj, v_proj; every
base weight frozen. Batch 1 x 256 random tokens, training mode. One step = forward + backward +
clip_grad_norm_(1.0) + AdamW (lr 2e-4, weight_decay 0) + zero_grad; 1 warm-up step, then `steps` (default 3).

Modes:
  fp32  everything in float32, with the BLAS as the environment leaves it (OPENBLAS_CORETYPE is read when
        torch loads OpenBLAS; bench/run_llama.sh runs this mode as installed and with SkylakeX kernels).
  bf16  forward and loss under torch.autocast("cpu", dtype=torch.bfloat16).
Threads: torch.set_num_threads(BENCH_THREADS or os.cpu_count()).
The last line is machine-readable for bench/run_llama.sh:
    result torch-MODE tokens/s X s/step Y peak_rss_MB Z fastest_step_tokens/s W
"""
import ctypes
import math
import os
import resource
import sys
import time

SEQ, WARMUP = 256, 1
CONFIG = dict(hidden=2048, intermediate=5632, n_layers=22, n_heads=32, n_kv_heads=4, vocab_size=32000,
              rms_norm_eps=1e-5, rope_theta=10000.0)
LORA = dict(r=16, alpha=32, dropout=0.05, targets=("q_proj", "k_proj", "v_proj"))
MODES = ("fp32", "bf16")


def parse_args(argv):
    mode = argv[1] if len(argv) > 1 else "fp32"
    steps = argv[2] if len(argv) > 2 else "3"
    steps = int(steps) if steps.isdigit() else 0
    if mode not in MODES or steps < 1:
        sys.exit("usage: torch_llama_lora.py [fp32|bf16] [steps >= 1]")
    return mode, steps


MODE, STEPS = parse_args(sys.argv)

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("PyTorch not installed: skipped")
    sys.exit(0)


def frozen_linear(n_in, n_out):
    """nn.Linear(bias=False) with transformers' N(0, 0.02) init, without paying for the default init first."""
    lin = torch.nn.utils.skip_init(nn.Linear, n_in, n_out, bias=False)
    nn.init.normal_(lin.weight, std=0.02)
    lin.weight.requires_grad_(False)
    return lin


class LoraLinear(nn.Module):
    """PEFT's lora.Linear: frozen base, y = base(x) + s * lora_B(lora_A(dropout(x)))."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base = base
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


class RMSNorm(nn.Module):
    """LlamaRMSNorm: normalised in float32, scaled in the input dtype."""

    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(head_dim, seq, theta):
    """LlamaRotaryEmbedding (default rope type), in float32: cos, sin [1, 1, T, head_dim]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[None, None], emb.sin()[None, None]


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, self.n_heads, self.n_kv = c["hidden"], c["n_heads"], c["n_kv_heads"]
        self.head_dim = h // self.n_heads
        kv = self.n_kv * self.head_dim
        self.q_proj, self.k_proj = frozen_linear(h, h), frozen_linear(h, kv)
        self.v_proj, self.o_proj = frozen_linear(h, kv), frozen_linear(h, h)

    def forward(self, x, cos, sin, causal):
        b, t, _ = x.shape
        hd, rep = self.head_dim, self.n_heads // self.n_kv
        q = self.q_proj(x).view(b, t, -1, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, -1, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k[:, :, None].expand(b, self.n_kv, rep, t, hd).reshape(b, self.n_heads, t, hd)   # repeat_kv
        v = v[:, :, None].expand(b, self.n_kv, rep, t, hd).reshape(b, self.n_heads, t, hd)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd) + causal
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        return self.o_proj(torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden"], c["intermediate"]
        self.input_layernorm = RMSNorm(h, c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(h, c["rms_norm_eps"])
        self.gate_proj, self.up_proj, self.down_proj = frozen_linear(h, i), frozen_linear(h, i), frozen_linear(i, h)

    def forward(self, x, cos, sin, causal):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, causal)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = torch.nn.utils.skip_init(nn.Embedding, c["vocab_size"], c["hidden"])
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        self.embed_tokens.weight.requires_grad_(False)
        self.layers = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["hidden"], c["rms_norm_eps"])
        self.lm_head = frozen_linear(c["hidden"], c["vocab_size"])
        self.head_dim, self.theta = c["hidden"] // c["n_heads"], c["rope_theta"]

    def forward(self, ids, labels):
        t = ids.shape[1]
        x = self.embed_tokens(ids)
        cos, sin = rope_cos_sin(self.head_dim, t, self.theta)
        causal = torch.triu(torch.full((t, t), torch.finfo(torch.float32).min), diagonal=1)[None, None]
        for block in self.layers:
            x = block(x, cos, sin, causal)
        logits = self.lm_head(self.norm(x)).float()
        # ForCausalLMLoss: labels shifted by one, the last position has no target
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))


def add_lora(model):
    """get_peft_model(LoraConfig(task_type CAUSAL_LM, r 16, alpha 32, q/k/v_proj)): adapters on the targets."""
    for block in model.layers:
        for name in LORA["targets"]:
            setattr(block.self_attn, name,
                    LoraLinear(getattr(block.self_attn, name), LORA["r"], LORA["alpha"], LORA["dropout"]))
    return [p for p in model.parameters() if p.requires_grad]


def blas_description():
    """Which BLAS library torch loaded, and OpenBLAS's own kernel name when it is OpenBLAS."""
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path).lower() and path.startswith("/"):
                paths.add(os.path.realpath(path))
    desc = ", ".join(sorted(paths)) or "none mapped"
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return "%s (%s; core %s)" % (desc, lib.openblas_get_config().decode(),
                                         lib.openblas_get_corename().decode())
        except (OSError, AttributeError):
            continue
    return desc


def step(model, opt, params, batch, times):
    t0 = time.perf_counter()
    if MODE == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(*batch)
    else:
        loss = model(*batch)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=False)
    t3 = time.perf_counter()
    for key, dt in zip(("forward", "backward", "optimizer"), (t1 - t0, t2 - t1, t3 - t2)):
        times[key] += dt
    times["fastest"] = min(times["fastest"], t3 - t0)
    return float(loss)


def main():
    threads = int(os.environ.get("BENCH_THREADS") or os.cpu_count())
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = LlamaForCausalLM(CONFIG)
    params = add_lora(model)
    model.train()
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = torch.randint(0, CONFIG["vocab_size"], (1, SEQ))
    batch = (ids, ids)   # labels = input_ids
    print("torch %s, mode %s, threads %d, trainable params %s" % (torch.__version__, MODE, threads,
                                                                 format(sum(p.numel() for p in params), ",")))
    print("peak RSS after building the model: %.0f MB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    warm = dict(forward=0.0, backward=0.0, optimizer=0.0, fastest=math.inf)
    for _ in range(WARMUP):
        loss = step(model, opt, params, batch, warm)
    print("warm-up step: %.3f s, loss %.4f" % (warm["fastest"], loss))
    print("BLAS: %s" % blas_description())
    print("OPENBLAS_CORETYPE=%s" % os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    times = dict(forward=0.0, backward=0.0, optimizer=0.0, fastest=math.inf)
    start = time.perf_counter()
    for _ in range(STEPS):
        loss = step(model, opt, params, batch, times)
    elapsed = time.perf_counter() - start
    print("steps: %d timed after %d warm-up; last loss %.4f" % (STEPS, WARMUP, loss))
    print("phases (s/step): forward %.3f  backward %.3f  optimizer %.3f (clip+step+zero_grad)"
          % (times["forward"] / STEPS, times["backward"] / STEPS, times["optimizer"] / STEPS))
    print("fastest step: %.3f s" % times["fastest"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("result torch-%s tokens/s %.2f s/step %.3f peak_rss_MB %.0f fastest_step_tokens/s %.2f"
          % (MODE, SEQ * STEPS / elapsed, elapsed / STEPS, peak_mb, SEQ / times["fastest"]))


if __name__ == "__main__":
    main()
