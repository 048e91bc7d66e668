/* Causal-LM dataset encoding (train/batches.c): prompt/completion rows past the builder's first capacities
 * (1,024 rows, 4,096 ids) keep every id and label in place; the prompt is masked (-100), the completion and
 * the appended EOS are targets. Under `make check` an overrun of the growing buffers is an ASan error. */
#include "testlib.h"

#include <stdlib.h>

#include "base/fs.h"
#include "text/tokenizer.h"
#include "train/batches.h"
#include "train/dataset.h"

enum { ROWS = 1500, GAMMA = 7, DELTA = 8 };   /* vocab ids below */

static int completion_words(int row) { return row % 5 + 2; }

static void write_rows(const char *path)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    for (int i = 0; i < ROWS; i++) {
        fputs("{\"prompt\": \"", f);
        for (int w = 0; w < i % 7 + 3; w++) fputs(w % 2 ? " beta" : " alpha", f);
        fputs("\", \"completion\": \"", f);
        for (int w = 0; w < completion_words(i); w++) fputs(w % 2 ? " delta" : " gamma", f);
        fputs("\"}\n", f);
    }
    fclose(f);
}

TEST(lm_encoding_keeps_prompt_completion_rows_past_first_capacities)
{
    char dir[600], path[700];
    pc_error err = {0};
    snprintf(dir, sizeof dir, "%s/lm_encode", pc_test_tmpdir());
    CHECK(pc_mkdirs(dir, &err) == PEFTC_OK);
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *v = fopen(path, "w");
    CHECK(v != NULL);
    if (!v) return;
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nalpha\nbeta\ngamma\ndelta\n", v);
    fclose(v);
    snprintf(path, sizeof path, "%s/sft.jsonl", dir);
    write_rows(path);
    pc_tokenizer *tok = NULL;
    pc_dataset *ds = NULL;
    pc_encoded e = {0};
    CHECK_MSG(pc_tokenizer_load(dir, &tok, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(tok && pc_lm_dataset_load(path, "text", &ds, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_MSG(ds && pc_encode_lm_dataset(tok, ds, 512, false, true, &e, &err) == PEFTC_OK, "%s", err.msg);
    if (e.n == ROWS) {
        const int eos = pc_tokenizer_eos_id(tok) >= 0;
        long bad = 0;
        for (int i = 0; i < ROWS; i++) {
            const int64_t start = e.offsets[i], end = e.offsets[i + 1], targets = completion_words(i) + eos;
            const int64_t first_target = end - targets;
            for (int64_t j = start; j < end; j++) {
                const int k = (int)(j - first_target);   /* index inside the completion */
                const int32_t want = k < 0 ? -100 : k < completion_words(i) ? (k % 2 ? DELTA : GAMMA) : e.ids[j];
                bad += e.token_labels[j] != want || (k >= 0 && e.ids[j] != e.token_labels[j]);
            }
            bad += first_target - start < i % 7 + 3;   /* the prompt's words (with any special tokens) */
        }
        CHECK_MSG(bad == 0, "%ld ids or labels out of place", bad);
    }
    CHECK_INT_EQ(e.n, ROWS);
    pc_encoded_free(&e);
    pc_dataset_free(ds);
    pc_tokenizer_free(tok);
}
