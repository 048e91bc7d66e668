#!/usr/bin/env python3
"""Golden fixtures for DoRA (LoraConfig(use_dora=True)) with PEFT's semantics.

Writes tests/fixtures/dora/:
  linear.safetensors       three Linear-level cases (bias / no bias / Conv1D layout), keys "<case>.<what>"
  distilbert_qv/           DistilBERT (the distilbert_tiny/qv model) with DoRA on q_lin, v_lin

DoRA is written out here after PEFT (tuners/lora/dora.py DoraLinearLayer.get_weight_norm / forward,
tuners/lora/variants.py DoraLinearVariant.forward / merge_safe; peft_facts.md section 4), HEAD semantics:
  lora_weight = lora_B(lora_A(eye(in))).T                   (= B @ A, [out, in])
  norm        = ||transpose(W, fan_in_fan_out) + s * lora_weight.detach()||_2 along dim 1, then .detach()
  c           = (m / norm).view(1, -1)
  result      = base(x)  (bias included)
  dropout Identity or eval: base_result = result - bias; else x = dropout(x), base_result = x @ W^T
  y           = result + ((c - 1) * base_result + c * lora_B(lora_A(x)) * s)
Everything is fp32, one CPU thread, seeded, dropout 0: two runs give byte-identical files (checked).
peft itself is not needed (nor installed).

linear.safetensors, per case (bias: nn.Linear with bias; nobias; conv1d: W stored [in, out] with bias,
fan_in_fan_out), in 24, out 16, r 4, alpha 8 (s = 2, key "scaling"), 5 input rows:
  <case>.W, .b, .A [4, 24], .B [16, 4] (non-zero), .m [16] = ||W + sBA|| * U(0.8, 1.2) (so c != 1),
  .x [5, 24], .w [5, 16], .y (forward), .weight_norm (||W + sBA|| per output row: DoRA's magnitude init),
  .grad.{A,B,m,x} of sum(y * w), .step3.{A,B,m} after 3 torch.optim.AdamW steps on sum(y * w)
  (lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on all three, no schedule, no clipping),
  .merged.lora (W + transpose(B @ A) * s) and .merged.dora (PEFT's merge_safe).
distilbert_qv/: the model of ../distilbert_tiny/qv (regenerated from the same seed and checked equal), the
  qv adapter (B non-zero) plus lora_magnitude_vector = ||W + sBA|| * U(0.8, 1.2) per module, use_dora true;
  case.safetensors holds the batch, logits, loss, grad.<key>, train.{loss,grad_norm,lr} and step3.<key> of
  3 Trainer steps exactly as make_distilbert_fixtures.py (clip 0.5, linear schedule, the magnitude decayed).
Self-checks before writing: m = ||W + sBA|| turns DoRA into LoRA; B = 0 gives ||W_row||; the merged weights
reproduce the DoRA / LoRA outputs; autograd gradients match float64 central differences of the function
whose norm is held fixed; A, B, m move in training; the DoRA logits differ from the LoRA ones; the
DoRA-merged DistilBERT reproduces the DoRA logits; every file reads back.

Usage: /usr/bin/python3 tools/make_dora_fixtures.py [output_dir]
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_distilbert_fixtures as mdf  # noqa: E402  (it checks that torch is present)
from make_distilbert_fixtures import PREFIX, TRAIN, check, lr_factor, max_rel, normal, st_load, st_save  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "dora")
QV_MODEL = os.path.join(REPO, "tests", "fixtures", "distilbert_tiny", "qv", "model", "model.safetensors")

IN, OUT, R, ALPHA, ROWS = 24, 16, 4, 8, 5
LINEAR_TRAIN = {"learning_rate": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "steps": 3}
LINEAR_CASES = {
    "bias": {"seed": 11, "bias": True, "fan_in_fan_out": False},
    "nobias": {"seed": 22, "bias": False, "fan_in_fan_out": False},
    "conv1d": {"seed": 33, "bias": True, "fan_in_fan_out": True},   # W stored [in, out] (GPT-2 Conv1D)
}


# --------------------------------------------------------------------------- DoRA as PEFT computes it
def transpose(w, fan_in_fan_out):
    return w.T if fan_in_fan_out else w


def weight_norm(W, lora_weight, s, fan_in_fan_out):
    """DoraLinearLayer.get_weight_norm: per output row of transpose(W) + s * lora_weight."""
    weight = transpose(W, fan_in_fan_out) + s * lora_weight
    return torch.linalg.norm(weight, dim=1).to(weight.dtype)


def base_forward(x, W, b, fan_in_fan_out):
    """nn.Linear (F.linear) or transformers' Conv1D (addmm with W [in, out])."""
    if fan_in_fan_out:
        y = x.reshape(-1, x.shape[-1]) @ W
        if b is not None:
            y = y + b
        return y.reshape(*x.shape[:-1], W.shape[1])
    return F.linear(x, W, b)


def dora_forward(x, W, b, A, B, m, s, fan_in_fan_out, detach_norm_of=None):
    """lora.Linear.forward with DoraLinearVariant, dropout Identity. detach_norm_of=(A0, B0) computes the norm
    from those fixed tensors instead (for finite differences of the detached-norm function)."""
    result = base_forward(x, W, b, fan_in_fan_out)
    nA, nB = detach_norm_of if detach_norm_of is not None else (A, B)
    x_eye = torch.eye(nA.shape[1], dtype=x.dtype)
    lora_weight = F.linear(F.linear(x_eye, nA), nB).T
    norm = weight_norm(W.to(x.dtype), lora_weight.detach(), s, fan_in_fan_out).detach()
    c = (m / norm).view(1, -1)
    lora_result = F.linear(F.linear(x, A), B)
    base_result = result - b if b is not None else result
    return result + ((c - 1) * base_result + c * lora_result * s)


def lora_merge(W, A, B, s, fan_in_fan_out):
    """get_delta_weight + merge: W + transpose(B @ A, fan_in_fan_out) * s."""
    return W + transpose(B @ A, fan_in_fan_out) * s


def dora_merge(W, A, B, m, s, fan_in_fan_out):
    """DoraLinearVariant.merge_safe: (m / ||W + delta||) * (W + delta), the factor per output row."""
    delta = transpose(B @ A, fan_in_fan_out) * s
    norm = weight_norm(W, transpose(delta, fan_in_fan_out), 1, fan_in_fan_out).detach()
    factor = transpose((m / norm).view(-1, 1), fan_in_fan_out)
    return factor * (W + delta)


def scaling():
    return ALPHA / R


# --------------------------------------------------------------------------- Linear-level cases
def linear_case(name, case):
    print(f"linear case {name}:")
    gen = torch.Generator().manual_seed(case["seed"])
    fif, s = case["fan_in_fan_out"], scaling()
    W = normal(gen, (IN, OUT) if fif else (OUT, IN), 0.3)
    b = normal(gen, (OUT,), 0.2) if case["bias"] else None
    bound = 1.0 / math.sqrt(IN)
    A = torch.rand(R, IN, generator=gen) * (2 * bound) - bound
    B = normal(gen, (OUT, R), 0.2)          # non-zero, as after some training
    x = normal(gen, (ROWS, IN), 1.0)
    w = normal(gen, (ROWS, OUT), 1.0)        # loss = sum(y * w)
    lora_weight = F.linear(F.linear(torch.eye(IN), A), B).T
    norm = weight_norm(W, lora_weight, s, fif)
    m = norm * (0.8 + 0.4 * torch.rand(OUT, generator=gen))  # a trained magnitude: c = m / norm != 1

    params = {"A": A.clone().requires_grad_(True), "B": B.clone().requires_grad_(True),
              "m": m.clone().requires_grad_(True)}
    xg = x.clone().requires_grad_(True)
    y = dora_forward(xg, W, b, params["A"], params["B"], params["m"], s, fif)
    (y * w).sum().backward()
    grads = {k: v.grad.detach().clone() for k, v in params.items()}
    grads["x"] = xg.grad.detach().clone()
    y = y.detach()

    opt = torch.optim.AdamW(list(params.values()), lr=LINEAR_TRAIN["learning_rate"],
                            betas=LINEAR_TRAIN["betas"], eps=LINEAR_TRAIN["eps"],
                            weight_decay=LINEAR_TRAIN["weight_decay"])
    for _ in range(LINEAR_TRAIN["steps"]):
        opt.zero_grad()
        (dora_forward(x, W, b, params["A"], params["B"], params["m"], s, fif) * w).sum().backward()
        opt.step()
    step3 = {k: v.detach().clone() for k, v in params.items()}

    # Self-checks.
    at_norm = dora_forward(x, W, b, A, B, norm, s, fif)
    lora = base_forward(x, W, b, fif) + F.linear(F.linear(x, A), B) * s
    check(max_rel(at_norm, lora) < 1e-6, "m = ||W + sBA|| makes DoRA equal LoRA")
    zero_b = weight_norm(W, torch.zeros(OUT, IN), s, fif)
    check(torch.equal(zero_b, torch.linalg.norm(transpose(W, fif), dim=1)), "B = 0: the magnitude init is ||W_row||")
    merged = dora_merge(W, A, B, m, s, fif)
    check(max_rel(base_forward(x, merged, b, fif), y) < 1e-5,
          "the DoRA-merged weight reproduces the DoRA output")
    lmerged = lora_merge(W, A, B, s, fif)
    check(max_rel(base_forward(x, lmerged, b, fif), lora) < 1e-5, "the LoRA-merged weight reproduces LoRA")
    fd_checks(x, W, b, A, B, m, w, s, fif, grads)
    moved = min(max_rel(step3[k], v) for k, v in (("A", A), ("B", B), ("m", m)))
    check(moved > 1e-4, f"A, B and m all moved in 3 steps (min rel change {moved:.2e})")

    out = {"W": W, "A": A, "B": B, "m": m, "x": x, "w": w, "y": y, "weight_norm": norm.detach(),
           "merged.dora": merged.detach(), "merged.lora": lmerged.detach()}
    if b is not None:
        out["b"] = b
    out.update({"grad." + k: v for k, v in grads.items()})
    out.update({"step3." + k: v for k, v in step3.items()})
    return {f"{name}.{k}": v.detach().contiguous() for k, v in out.items()}


def fd_checks(x, W, b, A, B, m, w, s, fif, grads):
    """Autograd against central differences in float64 of the function whose norm uses fixed A, B."""
    d = {"x": x.double(), "A": A.double(), "B": B.double(), "m": m.double()}
    W64, b64 = W.double(), None if b is None else b.double()
    fixed = (d["A"], d["B"])

    def loss(t):
        return float((dora_forward(t["x"], W64, b64, t["A"], t["B"], t["m"], s, fif, fixed) * w.double()).sum())

    for key, idx in (("A", (1, 3)), ("B", (5, 2)), ("m", (7,)), ("x", (2, 9))):
        h = 1e-6
        plus = {k: v.clone() for k, v in d.items()}
        minus = {k: v.clone() for k, v in d.items()}
        plus[key][idx] += h
        minus[key][idx] -= h
        fd = (loss(plus) - loss(minus)) / (2 * h)
        got = float(grads[key][idx])
        check(abs(fd - got) <= 1e-4 * abs(fd) + 1e-6, f"d loss / d {key}{list(idx)} = {got:.6g} matches FD {fd:.6g}")


# --------------------------------------------------------------------------- DistilBERT qv with DoRA
class DoraModel(mdf.Model):
    """make_distilbert_fixtures' DistilBERT with DoRA instead of LoRA on the adapter's modules."""

    def linear(self, name, x):
        a = self.adapter.get(PREFIX + name + ".lora_A.weight") if self.adapter else None
        if a is None:
            return super().linear(name, x)
        return dora_forward(x, self.base[name + ".weight"], self.base[name + ".bias"], a,
                            self.adapter[PREFIX + name + ".lora_B.weight"],
                            self.adapter[PREFIX + name + ".lora_magnitude_vector"], self.s, False)


def train_model(cfg, base, adapter, s, ids, mask, labels):
    """3 Trainer steps as make_distilbert_fixtures.train: clip 0.5, AdamW, linear schedule; the magnitude
    decays (transformers decays every parameter whose name has no "bias" / norm in it)."""
    params = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    decay = [p for k, p in params.items() if not k.endswith(".bias")]
    no_decay = [p for k, p in params.items() if k.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": TRAIN["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=TRAIN["learning_rate"], betas=tuple(TRAIN["betas"]), eps=TRAIN["eps"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: lr_factor(t, TRAIN["max_steps"], TRAIN["warmup_steps"]))
    model = DoraModel(cfg, base, params, s)
    log = {"loss": [], "grad_norm": [], "lr": []}
    for _ in range(TRAIN["max_steps"]):
        loss = F.cross_entropy(model.forward(ids, mask)[0], labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), TRAIN["max_grad_norm"])
        log["loss"].append(loss.item())
        log["grad_norm"].append(norm.item())
        log["lr"].append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        opt.zero_grad()
    return {k: v.detach() for k, v in params.items()}, log


def with_magnitudes(cfg, case, base, lora_adapter, gen, s):
    """The qv adapter plus lora_magnitude_vector = ||W + sBA|| * U(0.8, 1.2) per module, in PEFT's parameter
    order (lora_A, lora_B, lora_magnitude_vector per module, then the heads)."""
    out = {}
    for mod in mdf.lora_modules(cfg, case["targets"]):
        A = lora_adapter[PREFIX + mod + ".lora_A.weight"]
        B = lora_adapter[PREFIX + mod + ".lora_B.weight"]
        W = base[mod + ".weight"]
        norm = weight_norm(W, B @ A, s, False)
        out[PREFIX + mod + ".lora_A.weight"] = A
        out[PREFIX + mod + ".lora_B.weight"] = B
        out[PREFIX + mod + ".lora_magnitude_vector"] = norm * (0.8 + 0.4 * torch.rand(W.shape[0], generator=gen))
    out.update({k: v for k, v in lora_adapter.items() if "lora_" not in k})
    return out


def model_case(out_dir):
    print("model case distilbert_qv:")
    case = mdf.CASES["qv"]
    gen = torch.Generator().manual_seed(case["seed"])   # the same draws as make_distilbert_fixtures' qv case
    cfg = mdf.model_config(case)
    base = mdf.make_base(cfg, gen)
    lora_adapter = mdf.make_adapter(cfg, case, base, gen)
    ids, mask, labels = mdf.make_batch(cfg, gen, case["labels"])
    stored = st_load(QV_MODEL)
    check(set(stored) == set(base) and all(torch.equal(stored[k], base[k]) for k in base),
          "regenerated base == tests/fixtures/distilbert_tiny/qv/model (the model this case uses)")
    s = mdf.scaling(case)
    adapter = with_magnitudes(cfg, case, base, lora_adapter, torch.Generator().manual_seed(4321), s)

    params = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    logits, _ = DoraModel(cfg, base, params, s).forward(ids, mask)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {k: v.grad.detach().clone() for k, v in params.items()}
    step3, log = train_model(cfg, base, adapter, s, ids, mask, labels)
    check(log["loss"][0] == loss.item(), "first training loss == fixture loss")
    check(all(n > TRAIN["max_grad_norm"] for n in log["grad_norm"]), "clipping triggers on every step")
    lora_logits = mdf.Model(cfg, base, lora_adapter, s).forward(ids, mask)[0]
    check(max_rel(logits.detach(), lora_logits) > 1e-3, "DoRA logits differ from the LoRA logits (c != 1)")
    merged = dict(base)
    for mod in mdf.lora_modules(cfg, case["targets"]):
        merged[mod + ".weight"] = dora_merge(base[mod + ".weight"], adapter[PREFIX + mod + ".lora_A.weight"],
                                             adapter[PREFIX + mod + ".lora_B.weight"],
                                             adapter[PREFIX + mod + ".lora_magnitude_vector"], s, False)
    heads = {k: v for k, v in adapter.items() if "lora_" not in k}
    check(max_rel(mdf.Model(cfg, merged, heads, s).forward(ids, mask)[0], logits.detach()) < 1e-5,
          "the DoRA-merged model reproduces the DoRA logits")

    d = os.path.join(out_dir, "distilbert_qv")
    os.makedirs(os.path.join(d, "adapter_init"), exist_ok=True)
    config = mdf.adapter_config(case)
    config["use_dora"] = True
    mdf.write_json(os.path.join(d, "adapter_init", "adapter_config.json"), config, trailing_newline=False)
    st_save(os.path.join(d, "adapter_init", "adapter_model.safetensors"), adapter)
    golden = {"input_ids": ids, "attention_mask": mask, "labels": labels, "logits": logits.detach(),
              "loss": loss.detach().reshape(1), "train.loss": torch.tensor(log["loss"]),
              "train.grad_norm": torch.tensor(log["grad_norm"]), "train.lr": torch.tensor(log["lr"])}
    golden.update({"grad." + k: v for k, v in grads.items()})
    golden.update({"step3." + k: v for k, v in step3.items()})
    st_save(os.path.join(d, "case.safetensors"), golden)
    for path, want in (("adapter_init/adapter_model.safetensors", adapter), ("case.safetensors", golden)):
        got = st_load(os.path.join(d, path))
        check(set(got) == set(want) and all(torch.equal(got[k], want[k].detach()) for k in want),
              f"{path} reads back ({len(got)} tensors)")
    trainable = sum(v.numel() for v in adapter.values())
    total = sum(v.numel() for v in base.values()) + trainable   # heads counted twice, as PEFT does
    line = f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
    info = {"model": "../../distilbert_tiny/qv/model", "dora": {"r": case["r"], "lora_alpha": case["alpha"],
            "scaling": s, "target_modules": case["targets"], "magnitude": "||W + sBA|| * U(0.8, 1.2)",
            "B": "N(0, 0.1) (non-zero)"}, "training": dict(TRAIN, lr_used=log["lr"]),
            "print_trainable_parameters": {"trainable": trainable, "all": total, "line": line}}
    mdf.write_json(os.path.join(d, "case.json"), info, trailing_newline=True)
    print(f"  {line}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for name, case in LINEAR_CASES.items():
        tensors.update(linear_case(name, case))
    tensors["scaling"] = torch.tensor([scaling()])
    path = os.path.join(out_dir, "linear.safetensors")
    st_save(path, tensors)
    got = st_load(path)
    check(set(got) == set(tensors) and all(torch.equal(got[k], tensors[k]) for k in tensors),
          f"linear.safetensors reads back ({len(got)} tensors)")
    model_case(out_dir)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main()
