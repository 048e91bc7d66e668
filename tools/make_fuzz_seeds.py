#!/usr/bin/env python3
"""Makes the fuzzers' fixed tokenizers (tests/fuzz/tokenizers/) and seed corpora
(tests/fuzz/corpus/<target>/) from the test fixtures and small excerpts of the real files in
../shared. Tokenizers are cut down to a few hundred tokens (ids renumbered in order, merges
kept when both parts and the result survive) so that the seeds stay small.

Usage: python3 tools/make_fuzz_seeds.py [SHARED_DIR]   (run from the repository root)"""
import csv
import io
import json
import os
import struct
import sys

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
FUZZ = "tests/fuzz"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def dump(obj):
    return json.dumps(obj, ensure_ascii=False, indent=1)


def read(rel):
    with open(os.path.join(SHARED, rel), "rb") as f:
        return f.read()


def trim_tokenizer(tok, keep):
    """tok with only the vocabulary ids for which keep(id, token) holds (plus added tokens),
    renumbered 0.. in id order; added tokens and post-processor ids follow."""
    model = tok["model"]
    added = {a["content"] for a in tok["added_tokens"]}
    vocab = model["vocab"]
    items = sorted(vocab.items(), key=lambda kv: kv[1]) if isinstance(vocab, dict) else None
    kept = [t for t, i in items if keep(i, t) or t in added]
    new_id = {t: n for n, t in enumerate(kept)}
    model["vocab"] = new_id
    if "merges" in model:
        def parts(m):
            return m.split(" ", 1) if isinstance(m, str) else m
        model["merges"] = [m for m in model["merges"]
                           if all(p in new_id for p in parts(m)) and "".join(parts(m)) in new_id]
    for a in tok["added_tokens"]:
        a["id"] = new_id[a["content"]]
    post = tok.get("post_processor") or {}
    for name, spec in (post.get("special_tokens") or {}).items():
        spec["ids"] = [new_id[t] for t in spec["tokens"]]
    for key in ("cls", "sep"):
        if key in post:
            post[key][1] = new_id[post[key][0]]
    return tok


def tokenizers():
    bert = json.loads(read("tokenizers/distilbert-base-uncased/tokenizer.json"))
    small_bert = trim_tokenizer(json.loads(dump(bert)), lambda i, t: i < 104 or 999 <= i < 1100 or 1996 <= i < 2100)
    tiny_bert = trim_tokenizer(bert, lambda i, t: i < 1 or 999 <= i < 1065 or 1996 <= i < 2030)
    gpt2 = json.loads(read("tokenizers/gpt2/tokenizer.json"))
    small_gpt2 = trim_tokenizer(json.loads(dump(gpt2)), lambda i, t: i < 1000)
    tiny_gpt2 = trim_tokenizer(gpt2, lambda i, t: i < 300)
    llama = json.loads(read("tokenizers/TinyLlama-1.1B-Chat-v1.0/tokenizer.json"))
    tiny_llama = trim_tokenizer(llama, lambda i, t: i < 400)

    write(f"{FUZZ}/tokenizers/wordpiece/tokenizer.json", dump(small_bert))
    write(f"{FUZZ}/tokenizers/wordpiece/vocab.txt", "".join(t + "\n" for t in small_bert["model"]["vocab"]))
    write(f"{FUZZ}/tokenizers/wordpiece/tokenizer_config.json", read("tokenizers/distilbert-base-uncased/tokenizer_config.json"))
    write(f"{FUZZ}/tokenizers/bytelevel_bpe/tokenizer.json", dump(small_gpt2))
    write(f"{FUZZ}/tokenizers/sentencepiece_bpe/tokenizer.json", read("models/stories260K/tokenizer.json"))
    write(f"{FUZZ}/tokenizers/sentencepiece_bpe/tokenizer_config.json", read("models/stories260K/tokenizer_config.json"))

    seeds = f"{FUZZ}/corpus/tokenizer_json"
    write(f"{seeds}/wordpiece.json", json.dumps(tiny_bert, ensure_ascii=False))
    write(f"{seeds}/bytelevel_bpe.json", json.dumps(tiny_gpt2, ensure_ascii=False))
    write(f"{seeds}/sentencepiece_bpe_llama.json", json.dumps(tiny_llama, ensure_ascii=False))
    write(f"{seeds}/sentencepiece_bpe_stories.json", read("models/stories260K/tokenizer.json"))

    files = f"{FUZZ}/corpus/tokenizer_files"
    write(f"{files}/vocab_tiny.txt", "".join(t + "\n" for t in tiny_bert["model"]["vocab"]))
    for name, rel in (("distilbert", "tokenizers/distilbert-base-uncased"), ("gpt2", "tokenizers/gpt2"),
                      ("tinyllama", "tokenizers/TinyLlama-1.1B-Chat-v1.0"), ("stories", "models/stories260K")):
        write(f"{files}/tokenizer_config_{name}.json", read(f"{rel}/tokenizer_config.json"))


def texts():
    rows = [json.loads(l) for l in read("data/rotten_tomatoes/mini_train.jsonl").decode().splitlines()[:6]]
    out = f"{FUZZ}/corpus/tokenizer_encode"
    for i, r in enumerate(rows[:3]):
        write(f"{out}/review{i}.txt", r["text"])
    write(f"{out}/mixed.txt", "Héllo, WORLD!  naïve café 東京 🙂 [CLS] <s>\t</s>\n<|endoftext|> ##ing don't\u00a0x\u0301")
    data = f"{FUZZ}/corpus/dataset"
    write(f"{data}/reviews.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    write(f"{data}/reviews_array.json", json.dumps(rows))
    for sep, ext in ((",", "csv"), ("\t", "tsv")):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=sep, lineterminator="\r\n" if ext == "csv" else "\n")
        w.writerow(["text", "label"])
        w.writerows([[r["text"], r["label"]] for r in rows[:4]] + [['a "quoted", field\nwith a newline', "pos"]])
        write(f"{data}/reviews.{ext}", buf.getvalue())
    write(f"{data}/prompt_completion.jsonl", '{"prompt": "Q: 2+2?", "completion": " 4"}\n{"text": "plain"}\n')


def configs():
    out = f"{FUZZ}/corpus/configs"
    for root, _, names in os.walk("tests/fixtures"):
        for n in names:
            if n in ("config.json", "adapter_config.json") or n == "lora_seq_cls.json":
                tag = root.replace("tests/fixtures/", "").replace("/", "_")
                with open(os.path.join(root, n), "rb") as f:
                    write(f"{out}/{tag}_{n}", f.read())
    for rel in ("models/stories260K", "tokenizers/gpt2", "tokenizers/distilbert-base-uncased",
                "tokenizers/TinyLlama-1.1B-Chat-v1.0"):
        write(f"{out}/shared_{rel.split('/')[1]}_config.json", read(f"{rel}/config.json"))


def safetensors():
    out = f"{FUZZ}/corpus/safetensors"
    for rel in ("safetensors/dtypes.safetensors", "quant4/one_block.safetensors", "quant4/odd.safetensors",
                "causal_tiny/gpt2/adapter_init/adapter_model.safetensors"):
        with open(f"tests/fixtures/{rel}", "rb") as f:
            write(f"{out}/{rel.replace('/', '_')}", f.read())
    header = b'{"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
    write(f"{out}/bf16.safetensors", struct.pack("<Q", len(header)) + header + b"\x80\x3f\x00\xc0")

    index = f"{FUZZ}/corpus/st_index"
    a, b = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    write(f"{index}/two_shards.json", dump({"metadata": {"total_size": 40},
                                            "weight_map": {"a.weight": a, "b.weight": a, "c.weight": b}}))
    write(f"{index}/one_shard.json", dump({"weight_map": {"c.weight": b}}))


def quant_state():
    out = f"{FUZZ}/corpus/quant_state"
    write(f"{out}/plain.json", '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}')
    write(f"{out}/nested.json", '{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2, 64], '
                                '"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0312}')


if __name__ == "__main__":
    tokenizers()
    texts()
    configs()
    safetensors()
    quant_state()
