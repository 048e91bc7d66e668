#include "test_world.h"

#include <stdio.h>
#include <string.h>

#include "base/fs.h"
#include "testlib.h"

static const char *const words[] = {"good", "great", "fine", "fun", "bad", "awful", "dull", "poor", "film", "movie",
                                    "a", "the", "very", "not"};

void pc_test_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) { fputs(text, f); fclose(f); }
}

void pc_test_make_world(const char *dir, const pc_distilbert_config *sizes, uint64_t seed, int rows)
{
    char path[600];
    pc_error err = {0};
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(pc_mkdirs(path, &err) == PEFTC_OK);
    char *labels[2] = {"NEGATIVE", "POSITIVE"};
    pc_distilbert_config c = *sizes;
    c.vocab_size = 19;
    c.dropout = 0.1f;
    c.attention_dropout = 0.1f;
    c.seq_classif_dropout = 0.2f;
    c.num_labels = 2;
    c.id2label = labels;
    CHECK_MSG(pc_distilbert_write_random(path, &c, seed, &err) == PEFTC_OK, "%s", err.msg);
    char vocab[512] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
    for (int i = 0; i < 14; i++) { strcat(vocab, words[i]); strcat(vocab, "\n"); }
    snprintf(path, sizeof path, "%s/model/vocab.txt", dir);
    pc_test_write_text(path, vocab);
    char data[8192] = "";
    for (int i = 0; i < rows && i < 64; i++) {
        char line[128];
        snprintf(line, sizeof line, "{\"text\": \"a %s %s\", \"label\": %d}\n", words[i % 8], words[8 + i % 2], i % 8 < 4);
        strcat(data, line);
    }
    snprintf(path, sizeof path, "%s/train.jsonl", dir);
    pc_test_write_text(path, data);
}
