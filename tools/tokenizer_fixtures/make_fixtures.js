#!/usr/bin/env node
// Writes the WordPiece tokenizer fixtures of tests/test_tokenizer*.c with Hugging Face's own
// tokenizers library (the Rust core, through its Node binding):
//   tests/fixtures/tokenizer/distilbert_ids.jsonl  token ids of texts, per tokenizer variant
//   tests/fixtures/tokenizer/bert_chars.txt        BertNormalizer/BertPreTokenizer on every code point
// Usage (from this directory): npm install && node make_fixtures.js [SHARED_DIR]
// (.npmrc keeps npm from writing a package-lock.json; node_modules/ is git-ignored.)
// SHARED_DIR defaults to ../../../shared (the read-only data next to the repository).
"use strict";
const fs = require("fs");
const path = require("path");
const tk = require("tokenizers");

const repo = path.resolve(__dirname, "..", "..");
const shared = path.resolve(process.argv[2] || path.join(repo, "..", "shared"));
const outDir = path.join(repo, "tests", "fixtures", "tokenizer");
const tokDir = path.join(shared, "tokenizers", "distilbert-base-uncased");
const version = require("tokenizers/package.json").version;

function readJsonl(file) {
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l).text);
}

// Hand-made cases: each one aims at one rule of the normalizer, pre-tokenizer or model.
const edgeCases = [
  "", " ", "   \t\n  ", "Café Déjà vu", "naïve résumé FAÇADE", "我爱北京天安门", "hello世界world",
  "日本語のテキスト", "한국어 텍스트", "I love it 😀👍🏽 🇫🇷 ❤️ 👨‍👩‍👧", "a".repeat(150), "b".repeat(100),
  "c".repeat(101), "é".repeat(100), "é".repeat(101), "unaffable", "a\u0000b\u0001c\u007fd\u200be\ufeff f\ufffd g",
  "tab\tseparated\nlines\r\nand\u000bvt\u000cff", "don't!!!...", "well,this;is:a-test(ok)[yes]{no}<maybe>",
  "$100 #1 @user ~home `code` ^_^ |pipe| \\back/slash", "[CLS] is not [cls] or [ CLS ] but [SEP][SEP][PAD][MASK][UNK]",
  "x[CLS]y", "[CLS][CLS]", "ΟΔΥΣΣΕΥΣ ΚΑΙ ΠΗΝΕΛΟΠΗ", "МОСКВА И САНКТ-ПЕТЕРБУРГ", "İstanbul ŞİŞLİ", "ǅemal ß ẞ ﬁ ﬀ",
  "e\u0301 a\u0308 n\u0303 o\u0327\u0301 q\u0323\u0307", "Z\u0351\u0348a\u0310l\u0346g\u0312o", "end of line\u0085next",
  "line\u2028sep para\u2029sep nb\u00a0sp ideo\u3000sp thin\u2009sp", "“quoted” ‘single’ — dash – en … «guillemets» ¿qué? ¡sí!",
  "¥€£§¶©®™°±×÷", "3.14159 1,000,000 2nd 10%", "Ⅻ ① ² ＡＢＣ１２３", "priv\ue000ate newer\u2e43punct older\u2e3apunct",
  "नमस्ते दुनिया", "مَرْحَبًا بالعالم", "สวัสดีครับ", "  leading and trailing  ", "##ing ## # #a", "Hugging Face's tokenizers are FAST!!!",
  "I love <ent> New York<ent>x  <ent>  end", "a[SW]b [SW] c [SW].", "NEW YORK, new york and New  York", "World world WORLD",
];

// Tokenizer variants: edits of the distilbert tokenizer.json, and the tokenizer_config.json
// that says the same to a vocab.txt-only directory (null: vocab.txt cannot say it).
const variants = [
  {variant: "uncased", normalizer: null, added_tokens: [], tokenizer_config: {do_lower_case: true}},
  {variant: "cased", normalizer: {type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: false},
   added_tokens: [], tokenizer_config: {do_lower_case: false}},
  {variant: "keep_accents", normalizer: {type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: false, lowercase: true},
   added_tokens: [], tokenizer_config: {do_lower_case: true, strip_accents: false}},
  {variant: "no_chinese", normalizer: {type: "BertNormalizer", clean_text: true, handle_chinese_chars: false, strip_accents: null, lowercase: true},
   added_tokens: [], tokenizer_config: {do_lower_case: true, tokenize_chinese_chars: false}},
  {variant: "no_clean", normalizer: {type: "BertNormalizer", clean_text: false, handle_chinese_chars: true, strip_accents: true, lowercase: true},
   added_tokens: [], tokenizer_config: null},
  {variant: "added", normalizer: null, tokenizer_config: null, added_tokens: [
    {id: 30522, content: "<ent>", single_word: false, lstrip: true, rstrip: true, normalized: false, special: true},
    {id: 30523, content: "New York", single_word: false, lstrip: false, rstrip: false, normalized: true, special: false},
    {id: 30524, content: "[SW]", single_word: true, lstrip: false, rstrip: false, normalized: false, special: false},
    {id: 30525, content: "World", single_word: false, lstrip: false, rstrip: false, normalized: false, special: false},
  ]},
];

function makeTokenizer(v) {
  const json = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
  if (v.normalizer) json.normalizer = v.normalizer;
  json.added_tokens = json.added_tokens.concat(v.added_tokens);
  return tk.Tokenizer.fromString(JSON.stringify(json));
}

async function encode(tok, text, addSpecial, maxLength) {
  if (maxLength) tok.setTruncation(maxLength); else tok.disableTruncation();
  const e = await tok.encode(text, null, {addSpecialTokens: addSpecial});
  return e.getIds();
}

async function idsFixture() {
  const data = path.join(shared, "data", "rotten_tomatoes");
  const texts = readJsonl(path.join(data, "mini_train.jsonl")).concat(readJsonl(path.join(data, "mini_validation.jsonl")));
  const longest = texts.slice().sort((a, b) => b.length - a.length).slice(0, 5);
  const lines = [];
  // JSON parsers in C stop strings at U+0000, so such texts also come as UTF-8 hex.
  const hexOf = (text) => (text.includes("\u0000") ? {hex: Buffer.from(text, "utf8").toString("hex")} : {});
  const add = (variant, text, ids, extra) =>
    lines.push(JSON.stringify(Object.assign({variant, text}, hexOf(text), {ids}, extra)));
  for (const v of variants) {
    lines.push(JSON.stringify(v));
    const tok = makeTokenizer(v);
    const cases = v.variant === "uncased" ? texts.concat(edgeCases) : edgeCases;
    for (const text of cases) {
      const ids = await encode(tok, text, true, 0);
      if (ids.length > 512) throw new Error("case longer than the model maximum: " + text.slice(0, 40));
      add(v.variant, text, ids, {});
    }
    for (const text of edgeCases.slice(0, 12)) add(v.variant, text, await encode(tok, text, false, 0), {add_special: false});
    if (v.variant !== "uncased") continue;
    for (const text of longest) {
      add(v.variant, text, await encode(tok, text, true, 16), {max_length: 16});
      add(v.variant, text, await encode(tok, text, false, 16), {max_length: 16, add_special: false});
    }
    for (const n of [2, 3]) add(v.variant, longest[0], await encode(tok, longest[0], true, n), {max_length: n});
    const long = texts.slice(0, 40).join(" ");   // beyond 512 ids: max_length 0 means model_max_length
    add(v.variant, long, await encode(tok, long, true, 512), {max_length: 0});
  }
  fs.writeFileSync(path.join(outDir, "distilbert_ids.jsonl"), lines.join("\n") + "\n");
  return lines.length;
}

// ---- every code point ------------------------------------------------------------------
const MAX_CP = 0x10ffff, BLOCK = 4096, SEP = "x", CTRL = "\u0001";
const isSurrogate = (cp) => cp >= 0xd800 && cp <= 0xdfff;
const cpsOf = (s) => Array.from(s).map((c) => c.codePointAt(0));

// Normalizes each code point of a chunk alone, in one call: joined with a separator the
// normalizer neither changes nor produces, then split; the separator itself goes alone.
function mapChunk(normalizer, cps, sep) {
  const batch = cps.filter((cp) => String.fromCodePoint(cp) !== sep);
  const out = normalizer.normalizeString(batch.map((cp) => String.fromCodePoint(cp)).join(sep)).split(sep);
  if (out.length !== batch.length) throw new Error("separator did not survive normalization");
  let k = 0;
  return cps.map((cp) => (String.fromCodePoint(cp) === sep ? normalizer.normalizeString(sep) : out[k++]));
}

function fnv1a(h, words) {
  for (const w of words)
    for (let k = 0; k < 4; k++) h = Math.imul(h ^ ((w >>> (8 * k)) & 0xff), 16777619) >>> 0;
  return h;
}

function charsFixture() {
  const opts = (clean, chinese, strip, lower) => tk.bertNormalizer({cleanText: clean, handleChineseChars: chinese, stripAccents: strip, lowercase: lower});
  const clean = opts(true, false, false, false), chinese = opts(false, true, false, false);
  const strip = opts(false, false, true, false), lower = opts(false, false, false, true);
  const pre = tk.bertPreTokenizer();
  const classes = {R: [], W: [], P: [], C: []};
  const digests = {L: [], S: []};
  for (let base = 0; base <= MAX_CP; base += BLOCK) {
    const cps = [];
    for (let cp = base; cp < base + BLOCK; cp++) if (!isSurrogate(cp)) cps.push(cp);
    const cl = mapChunk(clean, cps, SEP), ch = mapChunk(chinese, cps, SEP);
    const lo = mapChunk(lower, cps, CTRL), st = mapChunk(strip, cps, CTRL);
    // Between separators, only a punctuation character stands alone as a pre-token.
    const punct = new Set(pre.preTokenizeString(SEP + cps.map((cp) => String.fromCodePoint(cp)).join(SEP) + SEP)
      .map(([piece]) => piece).filter((p) => p !== SEP && cpsOf(p).length === 1).map((p) => p.codePointAt(0)));
    let hl = 2166136261, hs = 2166136261;
    cps.forEach((cp, i) => {
      const c = String.fromCodePoint(cp);
      if (cl[i] === "") classes.R.push(cp);
      else if (cl[i] === " " && c !== " ") classes.W.push(cp);
      if (punct.has(cp)) classes.P.push(cp);
      if (ch[i] === " " + c + " ") classes.C.push(cp);
      if (lo[i] !== c) hl = fnv1a(hl, [cp].concat(cpsOf(lo[i]), [0xffffffff]));
      if (st[i] !== c) hs = fnv1a(hs, [cp].concat(cpsOf(st[i]), [0xffffffff]));
    });
    digests.L.push(hl.toString(16).padStart(8, "0"));
    digests.S.push(hs.toString(16).padStart(8, "0"));
  }
  const lines = [
    `# Generated by tools/tokenizer_fixtures/make_fixtures.js with Hugging Face tokenizers ${version} (Node).`,
    "# Code-point classes, as inclusive hex ranges: R removed by BertNormalizer clean_text, W turned into ' '",
    "# by clean_text (U+0020 itself not listed), P isolated by BertPreTokenizer, C spaced by handle_chinese_chars.",
    `# Then per block of ${BLOCK} code points (surrogates skipped): L/S <block> <FNV-1a 32 digest> of the`,
    "# lowercase / strip_accents maps: for each code point whose image differs from itself, in order, the",
    "# little-endian 32-bit words cp, image code points..., 0xffffffff.",
  ];
  for (const k of Object.keys(classes)) {
    const list = classes[k];
    for (let i = 0; i < list.length;) {
      let j = i;
      while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
      lines.push(`${k} ${list[i].toString(16)} ${list[j].toString(16)}`);
      i = j + 1;
    }
  }
  for (const k of Object.keys(digests)) digests[k].forEach((d, b) => lines.push(`${k} ${b.toString(16)} ${d}`));
  fs.writeFileSync(path.join(outDir, "bert_chars.txt"), lines.join("\n") + "\n");
  return lines.length;
}

(async () => {
  fs.mkdirSync(outDir, {recursive: true});
  console.log(`distilbert_ids.jsonl: ${await idsFixture()} lines`);
  console.log(`bert_chars.txt: ${charsFixture()} lines`);
})().catch((e) => { console.error(e); process.exit(1); });
