#!/usr/bin/env python3
"""Golden fixtures for DistilBertForSequenceClassification + LoRA (PEFT semantics).

Writes tests/fixtures/distilbert_tiny/{qv,all}/ (see tools/README.md for what each file holds).
transformers, peft and safetensors are not needed: the model (eager attention, exactly as
transformers' modeling_distilbert.py), LoRA (peft/tuners/lora/layer.py forward) and the safetensors
container are written out here by hand. Everything runs in fp32 on one CPU thread with dropout off,
so two runs give byte-identical files.

Usage: /usr/bin/python3 tools/make_distilbert_fixtures.py [output_dir]
"""
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as exc:
    sys.exit(f"make_distilbert_fixtures.py needs PyTorch and NumPy ({exc}); "
             "on Debian: apt-get install python3-torch")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "distilbert_tiny")

BASE_CONFIG = {
    "activation": "gelu",
    "architectures": ["DistilBertForSequenceClassification"],
    "attention_dropout": 0.1,
    "dim": 32,
    "dropout": 0.1,
    "hidden_dim": 64,
    "initializer_range": 0.02,
    "max_position_embeddings": 40,
    "model_type": "distilbert",
    "n_heads": 4,
    "n_layers": 2,
    "pad_token_id": 0,
    "qa_dropout": 0.1,
    "seq_classif_dropout": 0.2,
    "sinusoidal_pos_embds": False,
    "tie_weights_": True,
    "torch_dtype": "float32",
    "vocab_size": 100,
}

TRAIN = {"learning_rate": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
         "max_grad_norm": 0.5, "max_steps": 3, "warmup_steps": 0, "lr_scheduler_type": "linear"}

CASES = {
    "qv": {"seed": 1234, "labels_names": ["NEGATIVE", "POSITIVE"], "sinusoidal": False,
           "targets": ["q_lin", "v_lin"], "r": 4, "alpha": 8, "rslora": False, "labels": [1, 0, 1]},
    "all": {"seed": 5678, "labels_names": ["NEG", "NEU", "POS"], "sinusoidal": True,
            "targets": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"], "r": 4, "alpha": 8,
            "rslora": True, "labels": [2, 0, 1]},
}

BATCH, SEQ, LENGTHS = 3, 7, [7, 5, 3]
PREFIX = "base_model.model."
HEADS = ["pre_classifier", "classifier"]
LN_EPS = 1e-12


# --------------------------------------------------------------------------- safetensors
# Dtype enum order of safetensors' Rust core; files list tensors by dtype descending, then name.
ST_DTYPE_RANK = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
                 "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
                 "C64", "F64", "I64", "U64"]
ST_DTYPES = {torch.float32: "F32", torch.int64: "I64"}
ST_NUMPY = {"F32": "<f4", "I64": "<i8"}


def st_save(path, tensors):
    """Write {name: tensor} as PEFT/safetensors does with metadata {"format": "pt"}."""
    order = sorted(tensors, key=lambda n: (-ST_DTYPE_RANK.index(ST_DTYPES[tensors[n].dtype]), n))
    entries, blobs, offset = ['"__metadata__":{"format":"pt"}'], [], 0
    for name in order:
        t = tensors[name].detach().contiguous()
        dtype = ST_DTYPES[t.dtype]
        blob = t.numpy().astype(ST_NUMPY[dtype]).tobytes()
        shape = ",".join(str(d) for d in t.shape)
        entries.append(f'{json.dumps(name)}:{{"dtype":"{dtype}","shape":[{shape}],'
                       f'"data_offsets":[{offset},{offset + len(blob)}]}}')
        blobs.append(blob)
        offset += len(blob)
    header = ("{" + ",".join(entries) + "}").encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + b"".join(blobs))


def st_load(path):
    """Independent reader used to check what st_save wrote: {name: tensor}, in file order."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, f"{path}: header length {n} not a multiple of 8"
    header = json.loads(raw[8:8 + n])
    assert list(header)[0] == "__metadata__" and header.pop("__metadata__") == {"format": "pt"}
    data, out, end = raw[8 + n:], {}, 0
    for name, info in header.items():
        begin, stop = info["data_offsets"]
        assert begin == end, f"{path}: {name} does not start where the previous tensor ended"
        arr = np.frombuffer(data[begin:stop], dtype=ST_NUMPY[info["dtype"]])
        out[name] = torch.from_numpy(arr.copy()).reshape(info["shape"])
        end = stop
    assert end == len(data), f"{path}: data section has {len(data) - end} trailing bytes"
    return out


# --------------------------------------------------------------------------- model
def sinusoidal_table(n_pos, dim):
    """transformers' _create_sinusoidal_embeddings: float64 numpy table, sin even / cos odd, to f32."""
    enc = np.array([[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)]
                    for pos in range(n_pos)])
    out = torch.empty(n_pos, dim)
    out[:, 0::2] = torch.FloatTensor(np.sin(enc[:, 0::2]))
    out[:, 1::2] = torch.FloatTensor(np.cos(enc[:, 1::2]))
    return out


def normal(gen, shape, std, mean=0.0):
    return torch.randn(*shape, generator=gen) * std + mean


def layer_names(i):
    p = f"distilbert.transformer.layer.{i}."
    return {"q_lin": p + "attention.q_lin", "k_lin": p + "attention.k_lin",
            "v_lin": p + "attention.v_lin", "out_lin": p + "attention.out_lin",
            "lin1": p + "ffn.lin1", "lin2": p + "ffn.lin2",
            "sa_layer_norm": p + "sa_layer_norm", "output_layer_norm": p + "output_layer_norm"}


def make_base(cfg, gen):
    """All DistilBertForSequenceClassification parameters, HF names and registration order."""
    d, h, nl = cfg["dim"], cfg["hidden_dim"], len(cfg["id2label"])
    p = {}

    def linear(name, n_out, n_in):
        p[name + ".weight"] = normal(gen, (n_out, n_in), 0.15)
        p[name + ".bias"] = normal(gen, (n_out,), 0.05)

    def layer_norm(name):
        p[name + ".weight"] = normal(gen, (d,), 0.1, 1.0)
        p[name + ".bias"] = normal(gen, (d,), 0.05)

    word = normal(gen, (cfg["vocab_size"], d), 0.5)
    word[cfg["pad_token_id"]] = 0.0  # nn.Embedding(padding_idx) row, zeroed as HF _init_weights does
    p["distilbert.embeddings.word_embeddings.weight"] = word
    if cfg["sinusoidal_pos_embds"]:
        pos = sinusoidal_table(cfg["max_position_embeddings"], d)
    else:
        pos = normal(gen, (cfg["max_position_embeddings"], d), 0.5)
    p["distilbert.embeddings.position_embeddings.weight"] = pos
    layer_norm("distilbert.embeddings.LayerNorm")
    for i in range(cfg["n_layers"]):
        n = layer_names(i)
        for proj in ("q_lin", "k_lin", "v_lin", "out_lin"):
            linear(n[proj], d, d)
        layer_norm(n["sa_layer_norm"])
        linear(n["lin1"], h, d)
        linear(n["lin2"], d, h)
        layer_norm(n["output_layer_norm"])
    linear("pre_classifier", d, d)
    linear("classifier", nl, d)
    return p


def lora_modules(cfg, targets):
    return [layer_names(i)[t] for i in range(cfg["n_layers"])
            for t in ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2") if t in targets]


def make_adapter(cfg, case, base, gen):
    """Initial trainable tensors under PEFT's saved key names (PeftModel parameter order)."""
    a, r = {}, case["r"]
    for mod in lora_modules(cfg, case["targets"]):
        n_out, n_in = base[mod + ".weight"].shape
        bound = 1.0 / math.sqrt(n_in)  # kaiming_uniform_(a=sqrt(5)) on [r, in]
        a[PREFIX + mod + ".lora_A.weight"] = torch.rand(r, n_in, generator=gen) * (2 * bound) - bound
        # PEFT zeroes B; a non-zero B makes the gradient of A non-zero, so it can be checked.
        a[PREFIX + mod + ".lora_B.weight"] = normal(gen, (n_out, r), 0.1)
    for head in HEADS:
        for kind in ("weight", "bias"):
            a[f"{PREFIX}{head}.{kind}"] = base[f"{head}.{kind}"].clone()
    return a


def scaling(case):
    return case["alpha"] / (math.sqrt(case["r"]) if case["rslora"] else case["r"])


class Model:
    """Functional DistilBertForSequenceClassification with LoRA on `targets` (eval: no dropout)."""

    def __init__(self, cfg, base, adapter, s):
        self.cfg, self.base, self.adapter, self.s = cfg, base, adapter, s

    def linear(self, name, x):
        y = F.linear(x, self.base[name + ".weight"], self.base[name + ".bias"])
        a = self.adapter.get(PREFIX + name + ".lora_A.weight") if self.adapter else None
        if a is not None:  # PEFT: result + lora_B(lora_A(dropout(x))) * scaling
            y = y + F.linear(F.linear(x, a), self.adapter[PREFIX + name + ".lora_B.weight"]) * self.s
        return y

    def head(self, name, x):
        src = self.adapter if self.adapter else {}
        w = src.get(f"{PREFIX}{name}.weight", self.base[name + ".weight"])
        b = src.get(f"{PREFIX}{name}.bias", self.base[name + ".bias"])
        return F.linear(x, w, b)

    def layer_norm(self, name, x):
        return F.layer_norm(x, (x.shape[-1],), self.base[name + ".weight"], self.base[name + ".bias"],
                            eps=LN_EPS)

    def embed(self, ids):
        word = F.embedding(ids, self.base["distilbert.embeddings.word_embeddings.weight"])
        pos = self.base["distilbert.embeddings.position_embeddings.weight"][: ids.shape[1]]
        return self.layer_norm("distilbert.embeddings.LayerNorm", word + pos)

    def attention(self, n, x, mask):
        bs, q_len, dim = x.shape
        heads = self.cfg["n_heads"]
        dph = dim // heads

        def shape(t):
            return t.view(bs, -1, heads, dph).transpose(1, 2)

        q = shape(self.linear(n["q_lin"], x)) / math.sqrt(dph)
        k = shape(self.linear(n["k_lin"], x))
        v = shape(self.linear(n["v_lin"], x))
        scores = torch.matmul(q, k.transpose(2, 3))
        masked = (mask == 0).view(bs, 1, 1, -1).expand_as(scores)
        scores = scores.masked_fill(masked, torch.tensor(torch.finfo(scores.dtype).min))
        ctx = torch.matmul(F.softmax(scores, dim=-1), v)
        ctx = ctx.transpose(1, 2).contiguous().view(bs, -1, heads * dph)
        return self.linear(n["out_lin"], ctx)

    def block(self, i, x, mask):
        n = layer_names(i)
        sa = self.layer_norm(n["sa_layer_norm"], self.attention(n, x, mask) + x)
        ffn = self.linear(n["lin2"], F.gelu(self.linear(n["lin1"], sa)))  # exact erf GELU
        return self.layer_norm(n["output_layer_norm"], ffn + sa)

    def forward(self, ids, mask):
        hidden = {"emb": self.embed(ids)}
        x = hidden["emb"]
        for i in range(self.cfg["n_layers"]):
            x = self.block(i, x, mask)
            hidden[f"layer{i}"] = x
        pooled = F.relu(self.head("pre_classifier", x[:, 0]))
        return self.head("classifier", pooled), hidden


# --------------------------------------------------------------------------- training
def lr_factor(step, max_steps, warmup):
    """transformers' _get_linear_schedule_with_warmup_lr_lambda."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(max_steps - step) / float(max(1, max_steps - warmup)))


def train(cfg, case, base, adapter, ids, mask, labels):
    """3 Trainer-style steps: loss, backward, clip (pre-clip norm logged), AdamW step, schedule."""
    params = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    decay = [p for k, p in params.items() if not k.endswith(".bias")]  # HF decay grouping
    no_decay = [p for k, p in params.items() if k.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": TRAIN["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=TRAIN["learning_rate"], betas=tuple(TRAIN["betas"]), eps=TRAIN["eps"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: lr_factor(t, TRAIN["max_steps"], TRAIN["warmup_steps"]))
    model = Model(cfg, base, params, scaling(case))
    log = {"loss": [], "grad_norm": [], "lr": []}
    for _ in range(TRAIN["max_steps"]):
        logits, _ = model.forward(ids, mask)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), TRAIN["max_grad_norm"])
        log["loss"].append(loss.item())
        log["grad_norm"].append(norm.item())
        log["lr"].append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        opt.zero_grad()
    return {k: v.detach() for k, v in params.items()}, log


def train_reference_f64(cfg, case, base, adapter, ids, mask, labels):
    """Same 3 steps with hand-written clip + AdamW + schedule in float64 (independent check)."""
    base64 = {k: v.double() for k, v in base.items()}
    params = {k: v.double().clone().requires_grad_(True) for k, v in adapter.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    b1, b2 = TRAIN["betas"]
    model = Model(cfg, base64, params, scaling(case))
    for step in range(TRAIN["max_steps"]):
        logits, _ = model.forward(ids, mask)
        grads = torch.autograd.grad(F.cross_entropy(logits, labels), list(params.values()))
        total = math.sqrt(sum(float((g * g).sum()) for g in grads))
        clip = min(1.0, TRAIN["max_grad_norm"] / (total + 1e-6))
        lr = TRAIN["learning_rate"] * lr_factor(step, TRAIN["max_steps"], TRAIN["warmup_steps"])
        t = step + 1
        with torch.no_grad():
            for (k, p), g in zip(params.items(), grads):
                g = g * clip
                wd = 0.0 if k.endswith(".bias") else TRAIN["weight_decay"]
                p.mul_(1 - lr * wd)  # decoupled decay, applied before the Adam update
                m[k] = b1 * m[k] + (1 - b1) * g
                v2[k] = b2 * v2[k] + (1 - b2) * g * g
                denom = (v2[k] / (1 - b2 ** t)).sqrt() + TRAIN["eps"]
                p.sub_(lr / (1 - b1 ** t) * m[k] / denom)
    return {k: v.detach() for k, v in params.items()}


# --------------------------------------------------------------------------- checks
def check(cond, what):
    if not cond:
        sys.exit(f"self-check failed: {what}")
    print(f"  ok: {what}")


def max_rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))


def self_checks(cfg, case, base, adapter, ids, mask, labels, logits, grads, step3, log):
    s = scaling(case)
    model = Model(cfg, base, adapter, s)
    # 1. The attention mask hides padded tokens: new ids there leave those rows' logits bit-identical.
    ids2 = ids.clone()
    ids2[mask == 0] = 57
    check(torch.equal(model.forward(ids2, mask)[0], logits),
          "changing padded token ids leaves logits bit-identical")
    # 2. A padded row equals the same row run alone without padding.
    for row in (1, 2):
        n = LENGTHS[row]
        alone = model.forward(ids[row:row + 1, :n], mask[row:row + 1, :n])[0]
        check(max_rel(alone[0], logits[row]) < 1e-5, f"row {row} alone (length {n}) == padded row")
    # 3. LoRA placement: merging W + s*B@A into the base gives the same logits without adapter.
    merged = dict(base)
    for mod in lora_modules(cfg, case["targets"]):
        a = adapter[PREFIX + mod + ".lora_A.weight"]
        b = adapter[PREFIX + mod + ".lora_B.weight"]
        merged[mod + ".weight"] = base[mod + ".weight"] + s * (b @ a)
    heads_only = {k: v for k, v in adapter.items() if "lora_" not in k}
    check(max_rel(Model(cfg, merged, heads_only, s).forward(ids, mask)[0], logits) < 1e-5,
          "merged-weight model reproduces LoRA logits")
    # 4. Gradients against central finite differences in float64.
    base64 = {k: v.double() for k, v in base.items()}
    lora_keys = [k for k in adapter if "lora_" in k]
    for key, idx in [(lora_keys[0], (0, 1)), (lora_keys[-1], (2, 3)),
                     (PREFIX + "classifier.bias", (1,)), (PREFIX + "pre_classifier.weight", (3, 5))]:
        def loss_at(delta):
            ad = {k: v.double().clone() for k, v in adapter.items()}
            ad[key][idx] += delta
            return float(F.cross_entropy(Model(cfg, base64, ad, s).forward(ids, mask)[0], labels))
        h = 1e-6
        fd = (loss_at(h) - loss_at(-h)) / (2 * h)
        check(abs(fd - float(grads[key][idx])) <= 1e-3 * abs(fd) + 1e-7,
              f"d loss / d {key}{list(idx)} = {float(grads[key][idx]):.6g} matches FD {fd:.6g}")
    # 5. A stored sinusoidal table equals the formula in libm double precision rounded to f32.
    if cfg["sinusoidal_pos_embds"]:
        n_pos, dim = cfg["max_position_embeddings"], cfg["dim"]
        table = torch.tensor([[(math.sin if j % 2 == 0 else math.cos)(p / 10000 ** (2 * (j // 2) / dim))
                               for j in range(dim)] for p in range(n_pos)], dtype=torch.float64)
        check(torch.equal(base["distilbert.embeddings.position_embeddings.weight"], table.float()),
              "sinusoidal position table == sin/cos(pos / 10000^(2(j//2)/dim)) in double, to f32")
    # 6. Clipping triggers on every step; optimizer path matches a float64 hand implementation.
    check(all(n > TRAIN["max_grad_norm"] for n in log["grad_norm"]),
          f"pre-clip grad norms {['%.4f' % n for n in log['grad_norm']]} > max_grad_norm")
    ref = train_reference_f64(cfg, case, base, adapter, ids, mask, labels)
    worst = max(max_rel(step3[k], ref[k]) for k in ref)
    check(worst < 1e-4, f"step-3 tensors match float64 hand AdamW (max rel err {worst:.2e})")
    moved = min(max_rel(step3[k], adapter[k]) for k in adapter)
    check(moved > 1e-4, f"every trainable tensor moved in training (min rel change {moved:.2e})")


def trainable_report(base, adapter):
    """PEFT print_trainable_parameters: heads counted twice in all params (original + copy)."""
    trainable = sum(v.numel() for v in adapter.values())
    heads = sum(v.numel() for k, v in adapter.items() if "lora_" not in k)
    total = sum(v.numel() for v in base.values()) + trainable
    assert heads == sum(base[f"{h}.{k}"].numel() for h in HEADS for k in ("weight", "bias"))
    return trainable, total, (f"trainable params: {trainable:,d} || all params: {total:,d} "
                              f"|| trainable%: {100 * trainable / total:.4f}")


# --------------------------------------------------------------------------- files
def model_config(case):
    cfg = dict(BASE_CONFIG)
    cfg["sinusoidal_pos_embds"] = case["sinusoidal"]
    cfg["id2label"] = {str(i): n for i, n in enumerate(case["labels_names"])}
    cfg["label2id"] = {n: i for i, n in enumerate(case["labels_names"])}
    return cfg


def adapter_config(case):
    """LoraConfig as PEFT v0.17 saves it (field list of that release, inference_mode true)."""
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": None, "bias": "none",
        "corda_config": None, "eva_config": None, "exclude_modules": None, "fan_in_fan_out": False,
        "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {},
        "lora_alpha": case["alpha"], "lora_bias": False, "lora_dropout": 0.0,
        "megatron_config": None, "megatron_core": "megatron.core",
        "modules_to_save": ["classifier", "score"], "peft_type": "LORA", "qalora_group_size": 16,
        "r": case["r"], "rank_pattern": {}, "revision": None,
        "target_modules": sorted(case["targets"]), "target_parameters": None,
        "task_type": "SEQ_CLS", "trainable_token_indices": None, "use_dora": False,
        "use_qalora": False, "use_rslora": case["rslora"],
    }


def make_batch(cfg, gen, labels):
    ids = torch.randint(1, cfg["vocab_size"], (BATCH, SEQ), generator=gen)
    mask = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
    ids[mask == 0] = cfg["pad_token_id"]  # right padding, as DataCollatorWithPadding does
    return ids, mask, torch.tensor(labels, dtype=torch.int64)


def write_json(path, obj, trailing_newline):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + ("\n" if trailing_newline else ""))


def build_case(name, case, out_dir):
    print(f"case {name}:")
    gen = torch.Generator().manual_seed(case["seed"])
    cfg = model_config(case)
    base = make_base(cfg, gen)
    adapter = make_adapter(cfg, case, base, gen)
    ids, mask, labels = make_batch(cfg, gen, case["labels"])

    params = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    logits, hidden = Model(cfg, base, params, scaling(case)).forward(ids, mask)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {k: v.grad.detach() for k, v in params.items()}
    logits = logits.detach()
    base_logits = Model(cfg, base, None, scaling(case)).forward(ids, mask)[0]
    step3, log = train(cfg, case, base, adapter, ids, mask, labels)
    check(abs(log["loss"][0] - loss.item()) == 0.0, "first training loss == fixture loss")
    self_checks(cfg, case, base, adapter, ids, mask, labels, logits, grads, step3, log)

    d = os.path.join(out_dir, name)
    for sub in ("model", "adapter_init"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    write_json(os.path.join(d, "model", "config.json"), cfg, trailing_newline=True)
    st_save(os.path.join(d, "model", "model.safetensors"), base)
    write_json(os.path.join(d, "adapter_init", "adapter_config.json"), adapter_config(case),
               trailing_newline=False)
    st_save(os.path.join(d, "adapter_init", "adapter_model.safetensors"), adapter)
    golden = {"input_ids": ids, "attention_mask": mask, "labels": labels,
              "logits": logits, "base.logits": base_logits.detach(), "loss": loss.detach().reshape(1),
              "hidden.emb": hidden["emb"].detach(), "hidden.layer0": hidden["layer0"].detach(),
              "train.loss": torch.tensor(log["loss"]), "train.grad_norm": torch.tensor(log["grad_norm"]),
              "train.lr": torch.tensor(log["lr"])}
    golden.update({"grad." + k: v for k, v in grads.items()})
    golden.update({"step3." + k: v for k, v in step3.items()})
    st_save(os.path.join(d, "case.safetensors"), golden)

    for path, want in [("model/model.safetensors", base), ("adapter_init/adapter_model.safetensors",
                                                          adapter), ("case.safetensors", golden)]:
        got = st_load(os.path.join(d, path))
        check(set(got) == set(want) and all(torch.equal(got[k], want[k].detach()) for k in want),
              f"{path} reads back ({len(got)} tensors)")

    trainable, total, line = trainable_report(base, adapter)
    info = {"lora": {"r": case["r"], "lora_alpha": case["alpha"], "use_rslora": case["rslora"],
                     "scaling": scaling(case), "target_modules": case["targets"],
                     "modules_to_save": HEADS, "init": "A ~ U(+-1/sqrt(in)), B ~ N(0, 0.1) (non-zero)"},
            "training": dict(TRAIN, weight_decay_applies_to="lora_A/lora_B and head weights, not biases",
                             lr_used=log["lr"], dropout="off (eval-mode forward, gradients on)"),
            "batch": {"lengths": LENGTHS, "padding": "right, pad_token_id 0",
                      "loss": "CrossEntropyLoss, mean over the batch"},
            "print_trainable_parameters": {"trainable": trainable, "all": total, "line": line}}
    write_json(os.path.join(d, "case.json"), info, trailing_newline=True)
    print(f"  {line}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    torch.set_num_threads(1)
    for name, case in CASES.items():
        build_case(name, case, out_dir)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
