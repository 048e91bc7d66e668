#!/usr/bin/python3
"""The PyTorch peer of bench_train: the same DistilBERT-base LoRA training step, timed the same way.

    /usr/bin/python3 bench/torch_distilbert_lora.py [installed|tuned|bf16] [steps]

DistilBertForSequenceClassification as transformers' modeling_distilbert.py (eager attention,
post-LN blocks, eps 1e-12, erf GELU, dropout 0.1 / attention 0.1 / head 0.2), random weights;
PEFT's LoRA (y = W x + b + s * B(A(dropout(x))), r 8, alpha 32, dropout 0.05) on q_lin, v_lin; every
other base weight frozen; pre_classifier and classifier trainable (SEQ_CLS modules_to_save).
Batch 16 x 64 random tokens without padding; training mode. One step = zero_grad + forward + backward
+ clip_grad_norm_(1.0) + AdamW (torch.optim.AdamW, lr 1e-5, weight_decay 0), 2 warm-up steps.

Modes:
  installed  PyTorch as it is on this machine (its BLAS and the environment's OPENBLAS_CORETYPE).
  tuned      the same with OpenBLAS's AVX-512 kernels: OPENBLAS_CORETYPE=SkylakeX before torch loads
             (on a CPU with AVX-512; torch must use OpenBLAS's OpenMP build for it to matter).
  bf16       forward and loss under torch.autocast("cpu", dtype=torch.bfloat16).
Threads: torch.set_num_threads(BENCH_THREADS or os.cpu_count()).
The last line is machine-readable for bench/run.sh:
    result torch-MODE tokens/s X ms/step Y peak_rss_MB Z fastest_step_tokens/s W
"""
import ctypes
import math
import os
import resource
import sys
import time

BATCH, SEQ, WARMUP = 16, 64, 2
CONFIG = dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072, vocab_size=30522, max_pos=512,
              dropout=0.1, attention_dropout=0.1, seq_classif_dropout=0.2, num_labels=2)
LORA = dict(r=8, alpha=32, dropout=0.05, targets=("q_lin", "v_lin"))
MODES = ("installed", "tuned", "bf16")


def cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def parse_args(argv):
    mode = argv[1] if len(argv) > 1 else "installed"
    steps = argv[2] if len(argv) > 2 else "10"
    steps = int(steps) if steps.isdigit() else 0
    if mode not in MODES or steps < 1:
        sys.exit("usage: torch_distilbert_lora.py [installed|tuned|bf16] [steps >= 1]")
    return mode, steps


MODE, STEPS = parse_args(sys.argv)
if MODE == "tuned" and cpu_has_avx512():
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"   # read by OpenBLAS when torch loads it

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("PyTorch not installed: skipped")
    sys.exit(0)


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


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dim"]
        self.n_heads = c["n_heads"]
        self.q_lin, self.k_lin, self.v_lin, self.out_lin = (nn.Linear(d, d) for _ in range(4))
        self.dropout = nn.Dropout(c["attention_dropout"])

    def forward(self, x, mask):
        bs, t, d = x.shape
        h, dh = self.n_heads, d // self.n_heads

        def heads(y):
            return y.view(bs, t, h, dh).transpose(1, 2)

        q = heads(self.q_lin(x)) / math.sqrt(dh)
        k, v = heads(self.k_lin(x)), heads(self.v_lin(x))
        scores = torch.matmul(q, k.transpose(2, 3))
        scores = scores.masked_fill(mask.view(bs, 1, 1, t) == 0, torch.finfo(scores.dtype).min)
        weights = self.dropout(F.softmax(scores, dim=-1))
        ctx = torch.matmul(weights, v).transpose(1, 2).reshape(bs, t, d)
        return self.out_lin(ctx)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dim"]
        self.attention = Attention(c)
        self.sa_layer_norm = nn.LayerNorm(d, eps=1e-12)
        self.lin1, self.lin2 = nn.Linear(d, c["hidden_dim"]), nn.Linear(c["hidden_dim"], d)
        self.ffn_dropout = nn.Dropout(c["dropout"])
        self.output_layer_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, mask):
        sa = self.sa_layer_norm(self.attention(x, mask) + x)
        ffn = self.ffn_dropout(self.lin2(F.gelu(self.lin1(sa))))
        return self.output_layer_norm(ffn + sa)


class DistilBertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dim"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], d, padding_idx=0)
        self.position_embeddings = nn.Embedding(c["max_pos"], d)
        self.emb_layer_norm = nn.LayerNorm(d, eps=1e-12)
        self.emb_dropout = nn.Dropout(c["dropout"])
        self.layer = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.pre_classifier = nn.Linear(d, d)
        self.classifier = nn.Linear(d, c["num_labels"])
        self.head_dropout = nn.Dropout(c["seq_classif_dropout"])
        for m in self.modules():            # transformers' _init_weights
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, ids, mask, labels):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.emb_dropout(self.emb_layer_norm(self.word_embeddings(ids) + self.position_embeddings(pos)))
        for block in self.layer:
            x = block(x, mask)
        h = self.head_dropout(F.relu(self.pre_classifier(x[:, 0])))
        return F.cross_entropy(self.classifier(h), labels)


def add_lora(model):
    """get_peft_model(LoraConfig(task_type SEQ_CLS, r 8, alpha 32, q_lin/v_lin)): freeze, wrap, heads on."""
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.layer:
        for name in LORA["targets"]:
            setattr(block.attention, name,
                    LoraLinear(getattr(block.attention, name), LORA["r"], LORA["alpha"], LORA["dropout"]))
    for head in (model.pre_classifier, model.classifier):
        for p in head.parameters():
            p.requires_grad_(True)
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
    opt.zero_grad(set_to_none=False)
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
    t3 = time.perf_counter()
    for key, dt in zip(("forward", "backward", "optimizer"), (t1 - t0, t2 - t1, t3 - t2)):
        times[key] += dt
    times["fastest"] = min(times["fastest"], t3 - t0)
    return float(loss)


def main():
    threads = int(os.environ.get("BENCH_THREADS") or os.cpu_count())
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = DistilBertForSequenceClassification(CONFIG)
    params = add_lora(model)
    model.train()
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = torch.randint(1, CONFIG["vocab_size"], (BATCH, SEQ))
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    labels = torch.randint(0, CONFIG["num_labels"], (BATCH,))
    batch = (ids, mask, labels)
    n_train = sum(p.numel() for p in params)
    print("torch %s, mode %s, threads %d, trainable params %s" % (torch.__version__, MODE, threads,
                                                                 format(n_train, ",")))
    warm = dict(forward=0.0, backward=0.0, optimizer=0.0, fastest=math.inf)
    for _ in range(WARMUP):
        step(model, opt, params, batch, warm)
    print("BLAS: %s" % blas_description())
    print("OPENBLAS_CORETYPE=%s" % os.environ.get("OPENBLAS_CORETYPE", "(unset)"))
    times = dict(forward=0.0, backward=0.0, optimizer=0.0, fastest=math.inf)
    start = time.perf_counter()
    for _ in range(STEPS):
        loss = step(model, opt, params, batch, times)
    elapsed = time.perf_counter() - start
    ms = 1e3 / STEPS
    print("steps: %d timed after %d warm-up; last loss %.4f" % (STEPS, WARMUP, loss))
    print("phases (ms/step): forward %.1f  backward %.1f  optimizer %.1f (zero_grad+clip+AdamW)"
          % (times["forward"] * ms, times["backward"] * ms, times["optimizer"] * ms))
    print("fastest step: %.1f ms" % (times["fastest"] * 1e3))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("result torch-%s tokens/s %.1f ms/step %.1f peak_rss_MB %.0f fastest_step_tokens/s %.1f"
          % (MODE, BATCH * SEQ * STEPS / elapsed, elapsed * ms, peak_mb, BATCH * SEQ / times["fastest"]))


if __name__ == "__main__":
    main()
