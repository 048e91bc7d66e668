#!/usr/bin/env node
// Writes the tokenizer fixtures of tests/test_tokenizer*.c with Hugging Face's own tokenizers
// library (the Rust core, through its Node binding):
//   tests/fixtures/tokenizer/distilbert_ids.jsonl  WordPiece: ids (and decoded text) per tokenizer variant
//   tests/fixtures/tokenizer/bert_chars.txt        BertNormalizer/BertPreTokenizer on every code point
//   tests/fixtures/tokenizer/bpe_cases.jsonl       BPE (GPT-2, TinyLlama, stories260K and edited variants):
//                                                  ids and decoded text of hand-made, README and random texts
//   tests/fixtures/tokenizer/bpe_bulk.txt          the same tokenizers on every Rotten Tomatoes text, as digests
//   tests/fixtures/tokenizer/regex_classes.txt     regex classes (\s, \p{L}, ...) on every code point
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
    const withDecode = v.variant === "uncased" || v.variant === "added";
    for (const text of cases) {
      const ids = await encode(tok, text, true, 0);
      if (ids.length > 512) throw new Error("case longer than the model maximum: " + text.slice(0, 40));
      // decode(ids, skip_special_tokens): "decoded" skips them, "decoded_special" keeps them.
      const extra = {};
      if (withDecode) extra.decoded = await tok.decode(ids, true);
      if (withDecode && edgeCases.includes(text)) extra.decoded_special = await tok.decode(ids, false);
      add(v.variant, text, ids, extra);
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

// ---- BPE tokenizers ---------------------------------------------------------------------
// Variants: a real tokenizer directory under SHARED_DIR, optionally with edits to its tokenizer.json
// (top-level keys replaced, "model" keys merged in, "added_tokens" appended, "merges_as_pairs"
// rewriting "a b" merges as ["a", "b"]). tests/test_tokenizer_bpe.c applies the same edits.
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const bpeVariants = [
  {name: "gpt2", dir: "tokenizers/gpt2"},
  {name: "tinyllama", dir: "tokenizers/TinyLlama-1.1B-Chat-v1.0"},
  {name: "stories", dir: "models/stories260K"},
  // Llama 3's layout on the GPT-2 vocabulary: Split regex + ByteLevel without its own regex,
  // ignore_merges, merges as pairs, a BOS added token outside the model's vocabulary.
  {name: "llama3", dir: "tokenizers/gpt2", edits: {
    pre_tokenizer: {type: "Sequence", pretokenizers: [
      {type: "Split", pattern: {Regex: LLAMA3_SPLIT}, behavior: "Isolated", invert: false},
      {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false}]},
    post_processor: {type: "Sequence", processors: [
      {type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true},
      {type: "TemplateProcessing", single: [{SpecialToken: {id: "<|begin_of_text|>", type_id: 0}}, {Sequence: {id: "A", type_id: 0}}],
       pair: [{SpecialToken: {id: "<|begin_of_text|>", type_id: 0}}, {Sequence: {id: "A", type_id: 0}}, {SpecialToken: {id: "<|begin_of_text|>", type_id: 1}}, {Sequence: {id: "B", type_id: 1}}],
       special_tokens: {"<|begin_of_text|>": {id: "<|begin_of_text|>", ids: [50257], tokens: ["<|begin_of_text|>"]}}}]},
    model: {ignore_merges: true},
    added_tokens: [{id: 50257, content: "<|begin_of_text|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true}],
    merges_as_pairs: true}},
  // Llama 2 as newer converters write it: a Metaspace pre-tokenizer and decoder, no normalizer.
  {name: "metaspace", dir: "tokenizers/TinyLlama-1.1B-Chat-v1.0", edits: {
    normalizer: null,
    pre_tokenizer: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false},
    decoder: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false}}},
  // Checked on the hand-made cases only: the other Split behaviors, Metaspace splitting, more normalizers.
  {name: "split_removed", dir: "tokenizers/gpt2", edge_only: true, edits: {pre_tokenizer: {type: "Sequence", pretokenizers: [
    {type: "Split", pattern: {Regex: "\\s+"}, behavior: "Removed", invert: false},
    {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: false}]}}},
  {name: "split_previous", dir: "tokenizers/gpt2", edge_only: true, edits: {pre_tokenizer: {type: "Sequence", pretokenizers: [
    {type: "Split", pattern: {Regex: "\\p{L}+"}, behavior: "MergedWithPrevious", invert: false},
    {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false}]}}},
  {name: "split_next_inverted", dir: "tokenizers/gpt2", edge_only: true, edits: {pre_tokenizer: {type: "Sequence", pretokenizers: [
    {type: "Split", pattern: {Regex: "\\p{L}+"}, behavior: "MergedWithNext", invert: true},
    {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false}]}}},
  {name: "split_contiguous", dir: "tokenizers/gpt2", edge_only: true, edits: {pre_tokenizer: {type: "Sequence", pretokenizers: [
    {type: "Split", pattern: {Regex: "\\p{N}|\\p{P}"}, behavior: "Contiguous", invert: false},
    {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: false}]}}},
  {name: "metaspace_split", dir: "tokenizers/TinyLlama-1.1B-Chat-v1.0", edge_only: true, edits: {
    normalizer: null,
    pre_tokenizer: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true},
    decoder: {type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true}}},
  {name: "normalizers", dir: "tokenizers/TinyLlama-1.1B-Chat-v1.0", edge_only: true, edits: {
    normalizer: {type: "Sequence", normalizers: [{type: "NFKC"}, {type: "Lowercase"},
      {type: "Strip", strip_left: true, strip_right: true}, {type: "Replace", pattern: {Regex: " {2,}"}, content: " "},
      {type: "Prepend", prepend: "\u2581"}, {type: "Replace", pattern: {String: " "}, content: "\u2581"}]}}},
  {name: "nfd", dir: "tokenizers/TinyLlama-1.1B-Chat-v1.0", edge_only: true, edits: {
    normalizer: {type: "Sequence", normalizers: [{type: "NFD"},
      {type: "Prepend", prepend: "\u2581"}, {type: "Replace", pattern: {String: " "}, content: "\u2581"}]}}},
];

function loadBpeVariant(v) {
  const json = JSON.parse(fs.readFileSync(path.join(shared, v.dir, "tokenizer.json"), "utf8"));
  const e = v.edits || {};
  for (const k of Object.keys(e)) {
    if (k === "model") Object.assign(json.model, e.model);
    else if (k === "added_tokens") json.added_tokens = json.added_tokens.concat(e.added_tokens);
    else if (k === "merges_as_pairs") json.model.merges = json.model.merges.map((m) => m.split(" "));
    else json[k] = e[k];
  }
  return tk.Tokenizer.fromString(JSON.stringify(json));
}

// Hand-made cases: whitespace runs, digits, accents, emoji, scripts, special-token look-alikes.
const bpeEdgeCases = [
  "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t x", "a  b", "a   b", "a\n\nb", "a \n b", "a\t\tb",
  "  leading", "trailing  ", " both ", "Hello world", " Hello world", "Hello  world", "Hello world ", "hello\nworld",
  "I believe the meaning of life is", "Once upon a time", "Once upon a time, there was a little girl named Lily.",
  "0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "2nd 3rd 4th", "10%", "$5.99", "-17",
  "x1y22z333", "٣٤٥ ١٢", "①②③ ² ½ Ⅻ", "ＡＢＣ１２３", "Café", "Cafe\u0301", "naïve résumé façade", "ÀÉÎÕÜ àéîõü",
  "Ελληνικά κείμενο", "Русский текст", "עברית", "العربية", "हिन्दी", "ไทย", "한국어 텍스트", "日本語のテキスト",
  "中文文本", "我爱北京天安门", "hello世界world", "😀", "😀😃😄", "👍🏽", "🇫🇷🇩🇪", "👨‍👩‍👧‍👦", "❤️", "I love it 😀👍🏽 🇫🇷",
  "a😀b", " 😀", "\u00a0", "a\u00a0b", "a\u00a0 b", "\u3000x", "x\u2028y", "x\u2029y", "x\u0085y", "x\u000by", "x\u000cy",
  "x\u180ey", "\u180e!", "a\u180e!", "x\u200by", "x\u200dy", "\ufeffBOM", "x\u2009y\u202fz\u205fw", "\u1680ogham",
  "a\u2000b\u2001c\u200ad", " \u00a0 ", "\u00a0!", "!\u00a0", "a\u0001b\u007fc", "tab\tseparated\nlines\r\nand\u000bvt",
  "don't", "I'm", "you're", "we've", "she'll", "he'd", "it's", "IT'S", "I'M", "YOU'RE", "'s", "'S", "''", "'''",
  "it’s curly", "O'Neil's", "rock'n'roll", "'twas", " 's", "x's", "x'S", "x'LL", "x'Ll",
  "<s>", "</s>", "<unk>", "<s>Hello", "Hello</s>", "a<s>b", "a <s> b", "<s><s>", "</s></s>", "<s> </s>", "< s>", "<s",
  "s>", "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>", "<|endoftext|", "|endoftext|>",
  "<|begin_of_text|>", "<|begin_of_text|>Hi", "x<|begin_of_text|><s><|endoftext|></s>y", "<unk><s></s>",
  "\u2581", "\u2581\u2581", "\u2581already a metaspace \u2581\u2581", "▁x ▁ y", "<0x41>", "<0x0A>",
  "!!!", "???", "...", "…", "—", "--", "-->", "<!-- comment -->", "a.b,c;d:e", "(parens) [brackets] {braces}",
  "\"quoted\" 'single'", "“smart quotes” ‘single’", "«guillemets» ¿qué? ¡sí!", "¥€£§¶©®™°±×÷", "@user #tag $var %p ^c &a *s",
  "path/to/file.txt", "https://example.com/a?b=c&d=e#f", "user@example.com", "C:\\Windows\\System32", "snake_case camelCase",
  "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}", "    indented\n        more", "x = {'a': 1}",
  "a".repeat(300), "ab".repeat(60), "9".repeat(100), " ".repeat(100), "\n".repeat(50), "hello ".repeat(40), "😀".repeat(20),
  "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK bRoWn FoX",
  "Zalgo: Z\u0351\u0348a\u0310l\u0346g\u0312o", "e\u0301 a\u0308 n\u0303", "ǅemal ß ẞ ﬁ ﬀ", "İstanbul ŞİŞLİ", "ΟΔΥΣΣΕΥΣ",
  // letters, digits and symbols of Unicode 15-16 (unknown to PCRE2's tables)
  "a\u{105C0}\u{105C1}b x\u1C89y 1\u{10D40}\u{10D41}2 \u{10D40}x !\u2427! \u{1CCF0}",
];

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Random strings over an alphabet meant to stress the split regexes and the merges.
function randomCases(n, seed) {
  const rnd = mulberry32(seed);
  const pieces = ["a", "e", "t", "h", "s", "n", "the", "ing", "re", "Lily", "time", "A", "Z", "Q", "x", "1", "2", "9", "0",
    "123", " ", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "'", "'s", "'t", "'LL", ".", ",", "!", "?", "-", "_", "(", ")", "\"",
    "é", "ñ", "ü", "ß", "e\u0301", "😀", "👍🏽", "🇫🇷", "中", "国", "日本", "한", "Ω", "π", "Ж", "ا", "ก", "\u00a0",
    "\u3000", "\u2028", "\u0085", "\u180e", "\u200b", "\u2581", "<s>", "</s>", "<unk>", "<|endoftext|>", "<", ">", "|", "<0x41>",
    "١", "²", "Ⅻ", "…", "—", "“", "”", "€", "\u0001", "\u007f", "\ufffd"];
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(rnd() * 24);
    let s = "";
    for (let k = 0; k < len; k++) s += pieces[Math.floor(rnd() * pieces.length)];
    out.push(s);
  }
  return out;
}

const fnvIds = (ids) => fnv1a(2166136261, ids).toString(16).padStart(8, "0");

function fnvText(text) {
  let h = 2166136261;
  for (const b of Buffer.from(text, "utf8")) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h.toString(16).padStart(8, "0");
}

// ids, or "=name" when the variant "name" before it got the same ids (keeps the file small).
function sameAs(earlier, ids) {
  const same = Object.keys(earlier).find((k) => Array.isArray(earlier[k]) && earlier[k].join() === ids.join());
  return same ? "=" + same : ids;
}

async function bpeCasesFixture(tokenizers) {
  const rt = path.join(shared, "data", "rotten_tomatoes");
  const mini = readJsonl(path.join(rt, "mini_train.jsonl")).concat(readJsonl(path.join(rt, "mini_validation.jsonl")));
  const readme = fs.readFileSync(path.join(shared, "models", "stories260K", "README.md"), "utf8")
    .split("\n").filter((l) => l.trim());
  const long = mini.slice(0, 30).join("\n");
  const texts = bpeEdgeCases.concat(readme, mini, randomCases(560, 20240611), [long]);
  const lines = [JSON.stringify({variants: bpeVariants,
    note: "ids: encode(text) with add_special_tokens (unless \"add_special\": false), \"max_length\": " +
      "truncation; \"=name\": the same ids as variant name; edge_only variants only on the hand-made cases; " +
      "decoded: decode(ids, skip_special_tokens=true) where it differs from text; decoded_special: " +
      `decode(ids, false); by Hugging Face tokenizers ${version} (Node)`})];
  for (const text of texts) {
    const c = {text, ids: {}};
    const edge = bpeEdgeCases.includes(text);
    for (const v of bpeVariants) {
      if (v.edge_only && !edge) continue;
      const ids = await encode(tokenizers[v.name], text, true, 0);
      c.ids[v.name] = sameAs(c.ids, ids);
      const dec = await tokenizers[v.name].decode(ids, true);
      if (dec !== text) (c.decoded = c.decoded || {})[v.name] = dec;
      if (edge) (c.decoded_special = c.decoded_special || {})[v.name] = await tokenizers[v.name].decode(ids, false);
    }
    lines.push(JSON.stringify(c));
  }
  // add_special false, and truncation with and without the special tokens.
  const opts = [];
  for (const text of bpeEdgeCases.slice(0, 40)) opts.push([text, false, 0]);
  for (const text of mini.slice(0, 6)) for (const n of [1, 2, 5, 16]) { opts.push([text, true, n]); opts.push([text, false, n]); }
  for (const [text, special, maxLength] of opts) {
    const c = {text, add_special: special, max_length: maxLength, ids: {}};
    for (const v of bpeVariants.filter((x) => !x.edge_only))
      c.ids[v.name] = sameAs(c.ids, await encode(tokenizers[v.name], text, special, maxLength));
    lines.push(JSON.stringify(c));
  }
  fs.writeFileSync(path.join(outDir, "bpe_cases.jsonl"), lines.join("\n") + "\n");
  return lines.length;
}

// Every Rotten Tomatoes text: per variant the FNV-1a digest of the ids (as in bert_chars.txt), and
// "/<digest of the UTF-8 bytes>" of the decoded text when it differs from the text.
async function bpeBulkFixture(tokenizers) {
  const files = ["train.jsonl", "validation.jsonl", "test.jsonl"];
  const variants = bpeVariants.filter((v) => !v.edge_only && v.name !== "metaspace");
  const lines = [
    `# Generated by tools/tokenizer_fixtures/make_fixtures.js with Hugging Face tokenizers ${version} (Node).`,
    `# One line per text of ${files.map((f) => "data/rotten_tomatoes/" + f).join(", ")} in order; columns:`,
    `# ${variants.map((v) => v.name).join(" ")} (variants of bpe_cases.jsonl). Each column is the FNV-1a 32`,
    "# digest of encode(text) ids (with special tokens; little-endian 32-bit words), then \"/\" and the digest",
    "# of decode(ids, skip_special_tokens=true) as UTF-8 bytes where that differs from the text.",
  ];
  for (const f of files) {
    for (const text of readJsonl(path.join(shared, "data", "rotten_tomatoes", f))) {
      const cols = [];
      for (const v of variants) {
        const ids = await encode(tokenizers[v.name], text, true, 0);
        const dec = await tokenizers[v.name].decode(ids, true);
        cols.push(fnvIds(ids) + (dec === text ? "" : "/" + fnvText(dec)));
      }
      lines.push(cols.join(" "));
    }
  }
  fs.writeFileSync(path.join(outDir, "bpe_bulk.txt"), lines.join("\n") + "\n");
  return lines.length;
}

// ---- regex character classes on every code point ----------------------------------------
// Hugging Face runs tokenizer.json regexes with Oniguruma; peftc with PCRE2, whose Unicode
// tables differ. For each class, which code points a Split regex "CLASS+" (behavior
// Removed, WordLevel model) removes, as FNV-1a digests per 64K block of the member list.
const REGEX_CLASSES = ["\\s", "\\p{L}", "\\p{N}", "\\p{P}", "\\p{S}", "\\p{M}", "\\p{Z}", "\\p{Lu}", "\\p{Ll}",
  "\\p{Lt}", "\\p{Lm}", "\\p{Lo}", "\\p{Nd}"];
const REGEX_BLOCK = 65536;

function splitTokenizer(regex) {
  return tk.Tokenizer.fromString(JSON.stringify({version: "1.0", truncation: null, padding: null, added_tokens: [],
    normalizer: null, pre_tokenizer: {type: "Split", pattern: {Regex: regex}, behavior: "Removed", invert: false},
    post_processor: null, decoder: null, model: {type: "WordLevel", vocab: {"[UNK]": 0}, unk_token: "[UNK]"}}));
}

async function regexClassesFixture() {
  const lines = [
    `# Generated by tools/tokenizer_fixtures/make_fixtures.js with Hugging Face tokenizers ${version} (Node).`,
    "# Per regex class and block of 65536 code points (surrogates skipped): <class> <block> <count> <FNV-1a 32",
    "# digest of the members as little-endian 32-bit words>, members being the code points a Split regex",
    "# \"<class>+\" with behavior Removed takes out of the text.",
  ];
  for (const cls of REGEX_CLASSES) {
    const tok = splitTokenizer(cls + "+");
    for (let block = 0; block < 0x110000; block += REGEX_BLOCK) {
      const members = [];
      for (let base = block; base < block + REGEX_BLOCK; base += 4096) {
        const cps = [];
        for (let cp = base; cp < base + 4096; cp++) if (!isSurrogate(cp)) cps.push(cp);
        if (!cps.length) continue;
        const e = await tok.encode(cps.map((c) => String.fromCodePoint(c)).join(""), null, {addSpecialTokens: false});
        const kept = new Uint8Array(cps.length);           // offsets count code points
        for (const [a, b] of e.getOffsets()) for (let i = a; i < b; i++) kept[i] = 1;
        cps.forEach((cp, i) => { if (!kept[i]) members.push(cp); });
      }
      lines.push(`${cls} ${(block / REGEX_BLOCK).toString(16)} ${members.length} ` +
        fnv1a(2166136261, members).toString(16).padStart(8, "0"));
    }
  }
  fs.writeFileSync(path.join(outDir, "regex_classes.txt"), lines.join("\n") + "\n");
  return lines.length;
}

(async () => {
  fs.mkdirSync(outDir, {recursive: true});
  console.log(`distilbert_ids.jsonl: ${await idsFixture()} lines`);
  console.log(`bert_chars.txt: ${charsFixture()} lines`);
  const tokenizers = {};
  for (const v of bpeVariants) tokenizers[v.name] = loadBpeVariant(v);
  console.log(`bpe_cases.jsonl: ${await bpeCasesFixture(tokenizers)} lines`);
  console.log(`bpe_bulk.txt: ${await bpeBulkFixture(tokenizers)} lines`);
  console.log(`regex_classes.txt: ${await regexClassesFixture()} lines`);
})().catch((e) => { console.error(e); process.exit(1); });
