#!/usr/bin/env python3
"""Golden fixtures for causal language models + LoRA: LlamaForCausalLM (GQA, tied and untied heads,
attention biases, llama3 rope scaling), Qwen2ForCausalLM and GPT2LMHeadModel.

Writes tests/fixtures/causal_tiny/{llama_gqa,llama_tied_bias,qwen2,gpt2}/ and
tests/fixtures/causal_tiny/rope.safetensors (see tools/README.md for what each file holds).
transformers and peft are not needed: the models follow transformers' modeling_llama.py,
modeling_qwen2.py and modeling_gpt2.py (eager attention) line by line, LoRA follows
peft/tuners/lora/layer.py, and the safetensors writer is the one of make_distilbert_fixtures.py.
Everything runs in fp32 on one CPU thread with dropout off, so two runs give byte-identical files.

Usage: /usr/bin/python3 tools/make_causal_fixtures.py [output_dir]
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_distilbert_fixtures import (TRAIN, check, lr_factor, max_rel, normal, st_load,  # noqa: E402
                                      st_save, write_json)

import torch  # noqa: E402  (make_distilbert_fixtures already checked that torch is present)
import torch.nn.functional as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "causal_tiny")
TRANSFORMERS_VERSION = "4.45.2"  # written into config.json as save_pretrained does; no code depends on it

LLAMA_GQA = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 32,
    "initializer_range": 0.02, "intermediate_size": 48, "max_position_embeddings": 64, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
    "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION,
    "use_cache": True, "vocab_size": 64,
}
LLAMA_TIED_BIAS = dict(LLAMA_GQA, **{
    "attention_bias": True, "head_dim": 16, "num_key_value_heads": 4, "tie_word_embeddings": True,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 16, "rope_type": "llama3"},
})
QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 48,
    "max_position_embeddings": 64, "max_window_layers": 2, "model_type": "qwen2", "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_scaling": None,
    "rope_theta": 1000000.0, "sliding_window": 64, "tie_word_embeddings": True, "torch_dtype": "float32",
    "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "use_sliding_window": False,
    "vocab_size": 64,
}
# GPT2Config: tie_word_embeddings is not written because it equals the default (True).
GPT2 = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 63, "embd_pdrop": 0.1, "eos_token_id": 63, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_inner": None,
    "n_layer": 2, "n_positions": 32, "reorder_and_upcast_attn": False, "resid_pdrop": 0.1,
    "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True, "summary_activation": None,
    "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
    "summary_use_proj": True, "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION,
    "use_cache": True, "vocab_size": 64,
}

LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CASES = {
    "llama_gqa": {"config": LLAMA_GQA, "seed": 2024, "targets": ["q_proj", "k_proj", "v_proj"],
                  "r": 4, "alpha": 8, "generate": True},
    "llama_tied_bias": {"config": LLAMA_TIED_BIAS, "seed": 2025, "targets": "all-linear",
                        "r": 4, "alpha": 8, "generate": False},
    "qwen2": {"config": QWEN2, "seed": 2026, "targets": ["q_proj", "v_proj"], "r": 4, "alpha": 8,
              "generate": False},
    "gpt2": {"config": GPT2, "seed": 2027, "targets": ["c_attn"], "r": 4, "alpha": 8, "generate": True},
}

BATCH, SEQ, LENGTHS, PROMPT_TOKENS = 2, 9, [9, 6], 3  # row 1 right-padded; row 0's first 3 tokens are a prompt
GEN_PROMPT, GEN_NEW = 4, 8
PREFIX = "base_model.model."
IGNORE = -100


# --------------------------------------------------------------------------- configuration helpers
def is_gpt2(cfg):
    return cfg["model_type"] == "gpt2"


def n_layers(cfg):
    return cfg["n_layer"] if is_gpt2(cfg) else cfg["num_hidden_layers"]


def head_dim(cfg):
    """LlamaAttention: getattr(config, "head_dim", hidden_size // num_attention_heads)."""
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def qkv_bias(cfg):
    return cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)


def o_bias(cfg):
    """transformers: LlamaAttention.o_proj has bias=config.attention_bias; Qwen2Attention.o_proj has none."""
    return cfg["model_type"] == "llama" and cfg.get("attention_bias", False)


def tied(cfg):
    return cfg.get("tie_word_embeddings", True)


def linear_modules(cfg):
    """(module name, short name, in, out) of every nn.Linear / Conv1D except the output head."""
    mods = []
    for i in range(n_layers(cfg)):
        if is_gpt2(cfg):
            d, p = cfg["n_embd"], f"transformer.h.{i}."
            inner = cfg["n_inner"] or 4 * d
            mods += [(p + "attn.c_attn", "c_attn", d, 3 * d), (p + "attn.c_proj", "c_proj", d, d),
                     (p + "mlp.c_fc", "c_fc", d, inner), (p + "mlp.c_proj", "c_proj", inner, d)]
            continue
        h, hd, inter = cfg["hidden_size"], head_dim(cfg), cfg["intermediate_size"]
        nq, nkv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
        p = f"model.layers.{i}."
        shapes = {"q_proj": (h, nq), "k_proj": (h, nkv), "v_proj": (h, nkv), "o_proj": (nq, h),
                  "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
        for name in LLAMA_LINEARS:
            where = "self_attn." if name in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp."
            mods.append((p + where + name, name, *shapes[name]))
    return mods


def lora_modules(cfg, targets):
    """PEFT matching: "all-linear" = every linear but the output embedding; a list matches name suffixes."""
    if targets == "all-linear":
        return [m for m, _, _, _ in linear_modules(cfg)]
    return [m for m, short, _, _ in linear_modules(cfg) if short in targets]


def saved_target_modules(cfg, targets):
    """adapter_config.json target_modules: PEFT (>= 0.14) expands "all-linear" to the full module names
    (fewer than 20 here, so not compressed); saved as a set, written sorted here for stable files."""
    return sorted(lora_modules(cfg, targets)) if targets == "all-linear" else sorted(targets)


# --------------------------------------------------------------------------- random weights
def make_base(cfg, gen):
    """Every parameter under its transformers name, in registration order (tied heads not stored,
    as save_pretrained drops lm_head.weight when it shares the embedding)."""
    p = {}
    if is_gpt2(cfg):
        d = cfg["n_embd"]
        p["transformer.wte.weight"] = normal(gen, (cfg["vocab_size"], d), 0.5)
        p["transformer.wpe.weight"] = normal(gen, (cfg["n_positions"], d), 0.3)
        mods = {m: (i, o) for m, _, i, o in linear_modules(cfg)}
        for i in range(n_layers(cfg)):
            pre = f"transformer.h.{i}."
            for ln in ("ln_1", "ln_2"):
                p[pre + ln + ".weight"] = normal(gen, (d,), 0.1, 1.0)
                p[pre + ln + ".bias"] = normal(gen, (d,), 0.05)
            for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
                n_in, n_out = mods[pre + m]
                p[pre + m + ".weight"] = normal(gen, (n_in, n_out), 0.15)  # Conv1D stores [in, out]
                p[pre + m + ".bias"] = normal(gen, (n_out,), 0.05)
        p["transformer.ln_f.weight"] = normal(gen, (d,), 0.1, 1.0)
        p["transformer.ln_f.bias"] = normal(gen, (d,), 0.05)
        return p
    h = cfg["hidden_size"]
    p["model.embed_tokens.weight"] = normal(gen, (cfg["vocab_size"], h), 0.5)
    for m, short, n_in, n_out in linear_modules(cfg):
        p[m + ".weight"] = normal(gen, (n_out, n_in), 0.15)
        if (short in ("q_proj", "k_proj", "v_proj") and qkv_bias(cfg)) or (short == "o_proj" and o_bias(cfg)):
            p[m + ".bias"] = normal(gen, (n_out,), 0.1)
        if short == "down_proj":
            i = m.split(".")[2]
            p[f"model.layers.{i}.input_layernorm.weight"] = normal(gen, (h,), 0.1, 1.0)
            p[f"model.layers.{i}.post_attention_layernorm.weight"] = normal(gen, (h,), 0.1, 1.0)
    p["model.norm.weight"] = normal(gen, (h,), 0.1, 1.0)
    if not tied(cfg):
        p["lm_head.weight"] = normal(gen, (cfg["vocab_size"], h), 0.15)
    return p


def make_adapter(cfg, case, gen):
    """Initial LoRA tensors under PEFT's saved key names (A ~ U(+-1/sqrt(in)) as PEFT; B non-zero)."""
    a, r = {}, case["r"]
    shapes = {m: (i, o) for m, _, i, o in linear_modules(cfg)}
    for mod in lora_modules(cfg, case["targets"]):
        n_in, n_out = shapes[mod]
        bound = 1.0 / math.sqrt(n_in)
        a[PREFIX + mod + ".lora_A.weight"] = torch.rand(r, n_in, generator=gen) * (2 * bound) - bound
        # PEFT zeroes B; a non-zero B makes the gradient of A non-zero, so it can be checked.
        a[PREFIX + mod + ".lora_B.weight"] = normal(gen, (n_out, r), 0.1)
    return a


def scaling(case):
    return case["alpha"] / case["r"]


# --------------------------------------------------------------------------- rotary embeddings
def rope_inv_freq(theta, dim, scaling_cfg=None):
    """transformers modeling_rope_utils: _compute_default_rope_parameters, then _compute_llama3_parameters."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if scaling_cfg is None:
        return inv_freq
    assert scaling_cfg["rope_type"] == "llama3"
    factor = scaling_cfg["factor"]
    low_freq_factor = scaling_cfg["low_freq_factor"]
    high_freq_factor = scaling_cfg["high_freq_factor"]
    old_context_len = scaling_cfg["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def rope_cos_sin(inv_freq, position_ids):
    """LlamaRotaryEmbedding.forward: float32 freqs = inv_freq @ positions, emb = cat(freqs, freqs)."""
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(x, cos, sin):
    """x [B, heads, T, hd]; cos, sin [B, T, hd] (unsqueezed over heads)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (x * cos) + (rotate_half(x) * sin)


# --------------------------------------------------------------------------- models
def upcast(dtype):
    """transformers computes RMSNorm, the attention softmax and the loss in float32; the float64 checks
    stay in float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class CausalLM:
    """Functional LlamaForCausalLM / Qwen2ForCausalLM / GPT2LMHeadModel with LoRA (eval: no dropout).
    Works in the dtype of the weights passed in (float32 for the fixtures, float64 for checks)."""

    def __init__(self, cfg, base, adapter, s):
        self.cfg, self.base, self.adapter, self.s = cfg, base, adapter or {}, s

    def lora(self, name, x):
        a = self.adapter.get(PREFIX + name + ".lora_A.weight")
        if a is None:
            return 0
        # PEFT: result + lora_B(lora_A(dropout(x))) * scaling (Conv1D too: A [r, in], B [out, r])
        return F.linear(F.linear(x, a), self.adapter[PREFIX + name + ".lora_B.weight"]) * self.s

    def linear(self, name, x):
        return F.linear(x, self.base[name + ".weight"], self.base.get(name + ".bias")) + self.lora(name, x)

    def conv1d(self, name, x):
        """transformers.pytorch_utils.Conv1D: addmm(bias, x, weight) with weight [in, out]."""
        w, b = self.base[name + ".weight"], self.base[name + ".bias"]
        y = torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[1])
        return y + self.lora(name, x)

    def forward(self, ids, mask):
        return self.gpt2(ids, mask) if is_gpt2(self.cfg) else self.llama(ids, mask)

    # ---- Llama / Qwen2 (modeling_llama.py, modeling_qwen2.py)
    def rms_norm(self, name, x):
        input_dtype = x.dtype
        h = x.to(upcast(x.dtype))
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.cfg["rms_norm_eps"])
        return self.base[name + ".weight"] * h.to(input_dtype)

    def causal_mask(self, mask, dtype):
        """_prepare_4d_causal_attention_mask_with_cache_position: min on future keys and on padding keys."""
        bsz, seq = mask.shape
        min_dtype = torch.finfo(dtype).min
        causal = torch.full((seq, seq), fill_value=min_dtype, dtype=dtype)
        causal = torch.triu(causal, diagonal=1)
        causal = causal[None, None, :, :].expand(bsz, 1, -1, -1).clone()
        padding = (causal + mask[:, None, None, :].to(dtype)) == 0
        return causal.masked_fill(padding, min_dtype)

    def llama_attention(self, i, x, cos, sin, attn_mask):
        cfg = self.cfg
        bsz, seq, _ = x.shape
        hd, nh, nkv = head_dim(cfg), cfg["num_attention_heads"], cfg["num_key_value_heads"]
        p = f"model.layers.{i}.self_attn."
        q = self.linear(p + "q_proj", x).view(bsz, seq, -1, hd).transpose(1, 2)
        k = self.linear(p + "k_proj", x).view(bsz, seq, -1, hd).transpose(1, 2)
        v = self.linear(p + "v_proj", x).view(bsz, seq, -1, hd).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, cos, sin), apply_rotary_pos_emb(k, cos, sin)
        rep = nh // nkv  # repeat_kv
        k = k[:, :, None].expand(bsz, nkv, rep, seq, hd).reshape(bsz, nh, seq, hd)
        v = v[:, :, None].expand(bsz, nkv, rep, seq, hd).reshape(bsz, nh, seq, hd)
        w = torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5
        w = w + attn_mask
        w = F.softmax(w, dim=-1, dtype=upcast(q.dtype)).to(q.dtype)
        out = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(bsz, seq, -1)
        return self.linear(p + "o_proj", out)

    def llama(self, ids, mask):
        cfg = self.cfg
        x = F.embedding(ids, self.base["model.embed_tokens.weight"])
        positions = torch.arange(ids.shape[1])[None, :].expand(ids.shape[0], -1)
        inv_freq = rope_inv_freq(cfg["rope_theta"], head_dim(cfg), cfg.get("rope_scaling"))
        cos, sin = rope_cos_sin(inv_freq, positions)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        attn_mask = self.causal_mask(mask, x.dtype)
        hidden = {}
        for i in range(n_layers(cfg)):
            p = f"model.layers.{i}."
            x = x + self.llama_attention(i, self.rms_norm(p + "input_layernorm", x), cos, sin, attn_mask)
            h = self.rms_norm(p + "post_attention_layernorm", x)
            mlp = self.linear(p + "mlp.down_proj",
                              F.silu(self.linear(p + "mlp.gate_proj", h)) * self.linear(p + "mlp.up_proj", h))
            x = x + mlp
            hidden[f"layer{i}"] = x
        x = self.rms_norm("model.norm", x)
        head = self.base["model.embed_tokens.weight"] if tied(cfg) else self.base["lm_head.weight"]
        return F.linear(x, head), hidden

    # ---- GPT-2 (modeling_gpt2.py, eager GPT2Attention._attn)
    def layer_norm(self, name, x):
        return F.layer_norm(x, (x.shape[-1],), self.base[name + ".weight"], self.base[name + ".bias"],
                            eps=self.cfg["layer_norm_epsilon"])

    def gpt2_attention(self, i, x, attn_mask):
        bsz, seq, d = x.shape
        nh = self.cfg["n_head"]
        hd = d // nh
        p = f"transformer.h.{i}.attn."
        q, k, v = self.conv1d(p + "c_attn", x).split(d, dim=2)
        q, k, v = (t.view(bsz, seq, nh, hd).permute(0, 2, 1, 3) for t in (q, k, v))
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        causal = torch.tril(torch.ones((seq, seq), dtype=torch.bool)).view(1, 1, seq, seq)
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w + attn_mask, dim=-1)
        out = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(bsz, seq, d)
        return self.conv1d(p + "c_proj", out)

    def gelu_new(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def gpt2(self, ids, mask):
        positions = torch.arange(0, ids.shape[1], dtype=torch.long).unsqueeze(0)
        x = F.embedding(ids, self.base["transformer.wte.weight"]) + \
            F.embedding(positions, self.base["transformer.wpe.weight"])
        attn_mask = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        hidden = {}
        for i in range(n_layers(self.cfg)):
            p = f"transformer.h.{i}."
            x = x + self.gpt2_attention(i, self.layer_norm(p + "ln_1", x), attn_mask)
            h = self.conv1d(p + "mlp.c_proj", self.gelu_new(self.conv1d(p + "mlp.c_fc",
                                                                         self.layer_norm(p + "ln_2", x))))
            x = x + h
            hidden[f"layer{i}"] = x
        x = self.layer_norm("transformer.ln_f", x)
        return F.linear(x, self.base["transformer.wte.weight"]), hidden


def causal_lm_loss(logits, labels):
    """transformers ForCausalLMLoss: pad labels with -100, shift by one, mean over counted tokens."""
    shift_labels = F.pad(labels, (0, 1), value=IGNORE)[..., 1:].contiguous()
    logits = logits.to(upcast(logits.dtype))
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), shift_labels.view(-1), ignore_index=IGNORE)


# --------------------------------------------------------------------------- training
def train(cfg, case, base, adapter, ids, mask, labels):
    """3 Trainer-style steps: loss, backward, clip (pre-clip norm logged), AdamW step, schedule.
    Every trainable tensor is a LoRA weight, so weight decay applies to all of them."""
    params = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=TRAIN["learning_rate"], betas=tuple(TRAIN["betas"]),
                            eps=TRAIN["eps"], weight_decay=TRAIN["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: lr_factor(t, TRAIN["max_steps"], TRAIN["warmup_steps"]))
    model = CausalLM(cfg, base, params, scaling(case))
    log = {"loss": [], "grad_norm": [], "lr": []}
    for _ in range(TRAIN["max_steps"]):
        loss = causal_lm_loss(model.forward(ids, mask)[0], labels)
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
    model = CausalLM(cfg, base64, params, scaling(case))
    for step in range(TRAIN["max_steps"]):
        loss = causal_lm_loss(model.forward(ids, mask)[0], labels)
        grads = torch.autograd.grad(loss, list(params.values()))
        total = math.sqrt(sum(float((g * g).sum()) for g in grads))
        clip = min(1.0, TRAIN["max_grad_norm"] / (total + 1e-6))
        lr = TRAIN["learning_rate"] * lr_factor(step, TRAIN["max_steps"], TRAIN["warmup_steps"])
        t = step + 1
        with torch.no_grad():
            for (k, p), g in zip(params.items(), grads):
                g = g * clip
                p.mul_(1 - lr * TRAIN["weight_decay"])  # decoupled decay, before the Adam update
                m[k] = b1 * m[k] + (1 - b1) * g
                v2[k] = b2 * v2[k] + (1 - b2) * g * g
                denom = (v2[k] / (1 - b2 ** t)).sqrt() + TRAIN["eps"]
                p.sub_(lr / (1 - b1 ** t) * m[k] / denom)
    return {k: v.detach() for k, v in params.items()}


def greedy(model, prompt, n_new):
    """Greedy decoding by full forwards over the growing sequence (argmax, no KV cache, no padding)."""
    ids = prompt.clone()[None, :]
    for _ in range(n_new):
        logits = model.forward(ids, torch.ones_like(ids))[0]
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0]


def generation(cfg, model, gen):
    """Prompt of 4 tokens (Llama: BOS first) and 8 greedy tokens. Prompts are drawn until the continuation
    holds no EOS (so stopping at EOS cannot change the result), at least 5 distinct tokens (so that a
    decoder stuck on one token cannot pass) and a clear winner at every step (top-2 logit gap > 1e-2, so
    float rounding elsewhere cannot flip an argmax)."""
    eos = cfg["eos_token_id"]
    for _ in range(1000):
        prompt = torch.randint(3, cfg["vocab_size"] - 1, (GEN_PROMPT,), generator=gen)
        if not is_gpt2(cfg):
            prompt[0] = cfg["bos_token_id"]
        ids = greedy(model, prompt, GEN_NEW)
        new = ids[GEN_PROMPT:].tolist()
        logits = model.forward(ids[None, :], torch.ones_like(ids)[None, :])[0][0].detach()
        top2 = logits[GEN_PROMPT - 1:-1].topk(2, dim=-1).values
        if eos not in new and len(set(new)) >= 5 and float((top2[:, 0] - top2[:, 1]).min()) > 1e-2:
            return ids, logits
    sys.exit("no prompt found whose greedy continuation is varied and free of EOS")


# --------------------------------------------------------------------------- checks
def self_checks(cfg, case, base, adapter, ids, mask, labels, logits, grads, step3, log):
    s = scaling(case)
    model = CausalLM(cfg, base, adapter, s)
    real = mask.bool()
    # 1. Padding is invisible to real tokens: new ids at padded positions leave their logits bit-identical.
    ids2 = ids.clone()
    ids2[mask == 0] = 5
    check(torch.equal(model.forward(ids2, mask)[0][real], logits[real]),
          "changing padded token ids leaves the real positions' logits bit-identical")
    # 2. The padded row equals the same row run alone without padding.
    n = LENGTHS[1]
    alone = model.forward(ids[1:2, :n], mask[1:2, :n])[0]
    check(max_rel(alone[0], logits[1, :n]) < 1e-5, f"row 1 alone (length {n}) == padded row")
    # 3. Causality: changing the last token leaves every earlier position's logits bit-identical.
    ids3 = ids.clone()
    ids3[0, -1] = (ids3[0, -1] + 1) % cfg["vocab_size"]
    check(torch.equal(model.forward(ids3, mask)[0][0, :-1], logits[0, :-1]),
          "changing the last token leaves earlier logits bit-identical (causal)")
    # 4. LoRA placement: merging the low-rank update into the base weights gives the same logits.
    merged = dict(base)
    for mod in lora_modules(cfg, case["targets"]):
        delta = s * (adapter[PREFIX + mod + ".lora_B.weight"] @ adapter[PREFIX + mod + ".lora_A.weight"])
        merged[mod + ".weight"] = base[mod + ".weight"] + (delta.T if is_gpt2(cfg) else delta)  # fan_in_fan_out
    check(max_rel(CausalLM(cfg, merged, None, s).forward(ids, mask)[0], logits) < 1e-5,
          "merged-weight model reproduces LoRA logits")
    # 5. The loss is the mean over label tokens 1.. of -log softmax at the previous position.
    logp = torch.log_softmax(logits.double(), -1)
    terms = [-logp[b, t - 1, labels[b, t]] for b in range(BATCH) for t in range(1, SEQ) if labels[b, t] != IGNORE]
    check(abs(float(sum(terms) / len(terms)) - float(causal_lm_loss(logits, labels))) < 1e-6,
          f"loss == mean of {len(terms)} shifted token losses")
    # 6. Gradients against central finite differences in float64.
    base64 = {k: v.double() for k, v in base.items()}
    keys = list(adapter)
    for key, idx in [(keys[0], (0, 1)), (keys[1], (2, 3)), (keys[-2], (3, 5)), (keys[-1], (1, 2))]:
        def loss_at(delta):
            ad = {k: v.double().clone() for k, v in adapter.items()}
            ad[key][idx] += delta
            return float(causal_lm_loss(CausalLM(cfg, base64, ad, s).forward(ids, mask)[0], labels))
        h = 1e-6
        fd = (loss_at(h) - loss_at(-h)) / (2 * h)
        check(abs(fd - float(grads[key][idx])) <= 1e-3 * abs(fd) + 1e-7,
              f"d loss / d {key}{list(idx)} = {float(grads[key][idx]):.6g} matches FD {fd:.6g}")
    # 7. Clipping triggers on every step; the optimizer path matches a float64 hand implementation.
    check(all(g > TRAIN["max_grad_norm"] for g in log["grad_norm"]),
          f"pre-clip grad norms {['%.4f' % g for g in log['grad_norm']]} > max_grad_norm")
    ref = train_reference_f64(cfg, case, base, adapter, ids, mask, labels)
    worst = max(max_rel(step3[k], ref[k]) for k in ref)
    check(worst < 1e-4, f"step-3 tensors match float64 hand AdamW (max rel err {worst:.2e})")
    moved = min(max_rel(step3[k], adapter[k]) for k in adapter)
    check(moved > 1e-4, f"every trainable tensor moved in training (min rel change {moved:.2e})")


def trainable_report(base, adapter):
    """PEFT print_trainable_parameters; a tied head is one parameter (named_parameters deduplicates)."""
    trainable = sum(v.numel() for v in adapter.values())
    total = sum(v.numel() for v in base.values()) + trainable
    return trainable, total, (f"trainable params: {trainable:,d} || all params: {total:,d} "
                              f"|| trainable%: {100 * trainable / total:.4f}")


# --------------------------------------------------------------------------- files
def adapter_config(cfg, case):
    """LoraConfig as PEFT v0.17 saves it (field list of that release, inference_mode true)."""
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": None, "bias": "none",
        "corda_config": None, "eva_config": None, "exclude_modules": None, "fan_in_fan_out": is_gpt2(cfg),
        "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {},
        "lora_alpha": case["alpha"], "lora_bias": False, "lora_dropout": 0.0,
        "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None,
        "peft_type": "LORA", "qalora_group_size": 16, "r": case["r"], "rank_pattern": {}, "revision": None,
        "target_modules": saved_target_modules(cfg, case["targets"]), "target_parameters": None,
        "task_type": "CAUSAL_LM", "trainable_token_indices": None, "use_dora": False,
        "use_qalora": False, "use_rslora": False,
    }


def make_batch(cfg, gen):
    """Row 1 right-padded (pad id: 0 for Llama/Qwen2, EOS for GPT-2, as tokenizers without a pad token
    are usually set up); labels = ids with -100 on padding and on row 0's 3-token prompt."""
    ids = torch.randint(3, cfg["vocab_size"] - 1, (BATCH, SEQ), generator=gen)
    mask = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
    ids[mask == 0] = cfg["eos_token_id"] if is_gpt2(cfg) else 0
    labels = ids.clone()
    labels[mask == 0] = IGNORE
    labels[0, :PROMPT_TOKENS] = IGNORE
    return ids, mask, labels


def build_case(name, case, out_dir):
    print(f"case {name}:")
    cfg = case["config"]
    gen = torch.Generator().manual_seed(case["seed"])
    base = make_base(cfg, gen)
    adapter = make_adapter(cfg, case, gen)
    ids, mask, labels = make_batch(cfg, gen)

    params = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    logits, hidden = CausalLM(cfg, base, params, scaling(case)).forward(ids, mask)
    loss = causal_lm_loss(logits, labels)
    loss.backward()
    grads = {k: v.grad.detach() for k, v in params.items()}
    logits = logits.detach()
    base_logits = CausalLM(cfg, base, None, scaling(case)).forward(ids, mask)[0].detach()
    step3, log = train(cfg, case, base, adapter, ids, mask, labels)
    check(log["loss"][0] == loss.item(), "first training loss == fixture loss")
    self_checks(cfg, case, base, adapter, ids, mask, labels, logits, grads, step3, log)

    d = os.path.join(out_dir, name)
    for sub in ("model", "adapter_init"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    write_json(os.path.join(d, "model", "config.json"), cfg, trailing_newline=True)
    st_save(os.path.join(d, "model", "model.safetensors"), base)
    write_json(os.path.join(d, "adapter_init", "adapter_config.json"), adapter_config(cfg, case),
               trailing_newline=False)
    st_save(os.path.join(d, "adapter_init", "adapter_model.safetensors"), adapter)
    golden = {"input_ids": ids, "attention_mask": mask, "labels": labels, "logits": logits,
              "base.logits": base_logits, "loss": loss.detach().reshape(1),
              "hidden.layer0": hidden["layer0"].detach(),
              "train.loss": torch.tensor(log["loss"]), "train.grad_norm": torch.tensor(log["grad_norm"]),
              "train.lr": torch.tensor(log["lr"])}
    golden.update({"grad." + k: v for k, v in grads.items()})
    golden.update({"step3." + k: v for k, v in step3.items()})
    if case["generate"]:
        gen_ids, gen_logits = generation(cfg, CausalLM(cfg, base, adapter, scaling(case)), gen)
        golden["gen.ids"], golden["gen.logits"] = gen_ids, gen_logits
        print(f"  greedy: {gen_ids[:GEN_PROMPT].tolist()} -> {gen_ids[GEN_PROMPT:].tolist()}")
    st_save(os.path.join(d, "case.safetensors"), golden)

    for path, want in [("model/model.safetensors", base), ("adapter_init/adapter_model.safetensors", adapter),
                       ("case.safetensors", golden)]:
        got = st_load(os.path.join(d, path))
        check(set(got) == set(want) and all(torch.equal(got[k], want[k].detach()) for k in want),
              f"{path} reads back ({len(got)} tensors)")

    trainable, total, line = trainable_report(base, adapter)
    info = {"lora": {"r": case["r"], "lora_alpha": case["alpha"], "scaling": scaling(case),
                     "target_modules": case["targets"], "modules": len(lora_modules(cfg, case["targets"])),
                     "init": "A ~ U(+-1/sqrt(in)), B ~ N(0, 0.1) (non-zero)"},
            "training": dict(TRAIN, weight_decay_applies_to="every lora_A/lora_B weight", lr_used=log["lr"],
                             dropout="off (eval-mode forward, gradients on)"),
            "batch": {"lengths": LENGTHS, "padding": "right, id " + ("eos" if is_gpt2(cfg) else "0"),
                      "labels": "input_ids; -100 on padding and on row 0's first 3 tokens",
                      "loss": "transformers causal LM loss: shift by one, ignore -100, mean"},
            "print_trainable_parameters": {"trainable": trainable, "all": total, "line": line}}
    if case["generate"]:
        info["generation"] = {"prompt_tokens": GEN_PROMPT, "new_tokens": GEN_NEW, "ids": gen_ids.tolist(),
                              "method": "greedy argmax, adapter applied un-merged, full forward per step"}
    write_json(os.path.join(d, "case.json"), info, trailing_newline=True)
    print(f"  {line}")


# --------------------------------------------------------------------------- rotary tables
ROPE_TABLES = {
    # name: (theta, head_dim, max_pos, rope_scaling)
    "default": (10000.0, 16, 40, None),
    "llama3": (500000.0, 64, 64, {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 256, "rope_type": "llama3"}),
    "tied_bias": (10000.0, 16, 64, LLAMA_TIED_BIAS["rope_scaling"]),
}
ROPE_APPLY = {"table": "llama3", "B": 2, "T": 5, "heads": 3, "pos0": 7}


def build_rope(out_dir):
    """inv_freq / cos / sin tables as transformers computes them, plus one apply_rotary_pos_emb example."""
    print("rope tables:")
    tensors = {}
    for name, (theta, dim, max_pos, sc) in ROPE_TABLES.items():
        inv = rope_inv_freq(theta, dim, sc)
        cos, sin = rope_cos_sin(inv, torch.arange(max_pos)[None, :])
        tensors[name + ".inv_freq"], tensors[name + ".cos"], tensors[name + ".sin"] = inv, cos[0], sin[0]
        if sc:
            wavelen = 2 * math.pi / rope_inv_freq(theta, dim)
            old = sc["original_max_position_embeddings"]
            bands = [int((wavelen < old / sc["high_freq_factor"]).sum()),
                     int((wavelen > old / sc["low_freq_factor"]).sum())]
            print(f"  {name}: {bands[0]} high-frequency (kept), {bands[1]} low (divided), "
                  f"{dim // 2 - sum(bands)} interpolated")
    a = ROPE_APPLY
    theta, dim, _, sc = ROPE_TABLES[a["table"]]
    gen = torch.Generator().manual_seed(77)
    x = torch.rand(a["B"], a["T"], a["heads"] * dim, generator=gen) * 2 - 1
    positions = torch.arange(a["pos0"], a["pos0"] + a["T"])[None, :].expand(a["B"], -1)
    cos, sin = rope_cos_sin(rope_inv_freq(theta, dim, sc), positions)
    y = apply_rotary_pos_emb(x.view(a["B"], a["T"], a["heads"], dim).transpose(1, 2), cos, sin)
    tensors["apply.x"], tensors["apply.y"] = x, y.transpose(1, 2).reshape(a["B"], a["T"], -1).contiguous()
    check(torch.allclose(tensors["apply.y"].norm(dim=-1), x.norm(dim=-1), rtol=1e-5),
          "rotation keeps vector norms")
    path = os.path.join(out_dir, "rope.safetensors")
    st_save(path, tensors)
    got = st_load(path)
    check(all(torch.equal(got[k], tensors[k]) for k in tensors), f"rope.safetensors reads back ({len(got)} tensors)")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    build_rope(out_dir)
    for name, case in CASES.items():
        build_case(name, case, out_dir)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
