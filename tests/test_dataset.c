#include "testlib.h"
#include "train/dataset.h"

#include <stdlib.h>
#include <time.h>

static char *const names2[] = {"NEGATIVE", "POSITIVE"};

/* Writes len bytes to a file named name in the test temp dir; path goes to buf. */
static const char *write_tmp(char *buf, size_t cap, const char *name, const char *bytes, size_t len)
{
    snprintf(buf, cap, "%s/%s", pc_test_tmpdir(), name);
    FILE *f = fopen(buf, "wb");
    if (!f) return buf;
    fwrite(bytes, 1, len, f);
    fclose(f);
    return buf;
}

#define WRITE_TMP(buf, name, literal) write_tmp(buf, sizeof buf, name, literal, sizeof literal - 1)

/* Loads a file that must fail; the message must be exactly "<path><rest>". */
static void expect_error(const char *name, const char *bytes, size_t len, bool require_labels,
                         char *const *id2label, int num_labels, pc_status code, const char *rest, int line)
{
    char path[512], want[1024];
    write_tmp(path, sizeof path, name, bytes, len);
    snprintf(want, sizeof want, "%s%s", path, rest);
    pc_dataset *ds = (pc_dataset *)1;
    pc_error err = {0};
    pc_status s = pc_dataset_load(path, "text", "label", id2label, num_labels, require_labels, &ds, &err);
    if (s != code) pc_test_fail(__FILE__, line, "status %d, expected %d (%s)", s, code, err.msg);
    if (ds) pc_test_fail(__FILE__, line, "dataset not NULL after an error");
    if (strcmp(err.msg, want) != 0) pc_test_fail(__FILE__, line, "message \"%s\", expected \"%s\"", err.msg, want);
}

#define EXPECT_ERROR(name, literal, require, id2label, n, code, rest) \
    expect_error(name, literal, sizeof literal - 1, require, id2label, n, code, rest, __LINE__)

TEST(dataset_jsonl_string_and_int_labels)
{
    pc_dataset *ds;
    pc_error err = {0};
    pc_status s = pc_dataset_load(pc_test_fixture("data/sentiment_names.jsonl"), "sentence", "label", names2, 2,
                                  true, &ds, &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    CHECK_INT_EQ(ds->n, 4);  /* the blank line is skipped */
    CHECK_STR_EQ(ds->texts[0], "a gorgeous, witty film");
    CHECK_STR_EQ(ds->texts[1], "it's a dud");
    CHECK_STR_EQ(ds->texts[3], "\"quoted\" and caf\xC3\xA9 \xF0\x9F\x98\x80");  /* \u escapes -> UTF-8 */
    CHECK_INT_EQ(ds->labels[0], 1);
    CHECK_INT_EQ(ds->labels[1], 0);
    CHECK_INT_EQ(ds->labels[2], 1);
    CHECK_INT_EQ(ds->labels[3], 0);  /* "0" is not a name, so it is read as an id */
    CHECK_CONTAINS(ds->path, "sentiment_names.jsonl");
    pc_dataset_free(ds);
}

TEST(dataset_tsv_with_quotes_and_names)
{
    pc_dataset *ds;
    pc_error err = {0};
    pc_status s = pc_dataset_load(pc_test_fixture("data/reviews.tsv"), "review", "label", names2, 2, true, &ds,
                                  &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    CHECK_INT_EQ(ds->n, 2);
    CHECK_STR_EQ(ds->texts[0], "fine, \"mixed\"");  /* a quote inside an unquoted field is literal */
    CHECK_STR_EQ(ds->texts[1], "tab\tinside");
    CHECK_INT_EQ(ds->labels[0], 1);
    CHECK_INT_EQ(ds->labels[1], 0);
    pc_dataset_free(ds);
}

TEST(dataset_csv_rfc4180_quoting_bom_crlf)
{
    char path[512];
    WRITE_TMP(path, "quoting.csv",
              "\xEF\xBB\xBFsentence,label,source\r\n"
              "plain text,1,a\r\n"
              "\"with, comma\",0,b\r\n"
              "\"she said \"\"hi\"\"\",1,c\r\n"
              "\"two\r\nlines\",0,d\r\n"
              "\r\n"
              ",POSITIVE,e\r\n"
              "\"caf\xC3\xA9\",0,\"f\"");
    pc_dataset *ds;
    pc_error err = {0};
    pc_status s = pc_dataset_load(path, "sentence", "label", names2, 2, true, &ds, &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    CHECK_INT_EQ(ds->n, 6);
    CHECK_STR_EQ(ds->texts[0], "plain text");
    CHECK_STR_EQ(ds->texts[1], "with, comma");
    CHECK_STR_EQ(ds->texts[2], "she said \"hi\"");
    CHECK_STR_EQ(ds->texts[3], "two\r\nlines");
    CHECK_STR_EQ(ds->texts[4], "");
    CHECK_STR_EQ(ds->texts[5], "caf\xC3\xA9");
    const int want[] = {1, 0, 1, 0, 1, 0};
    for (int i = 0; i < 6; i++) CHECK_INT_EQ(ds->labels[i], want[i]);
    pc_dataset_free(ds);
}

TEST(dataset_csv_error_lines_count_quoted_newlines)
{
    /* the record with the bad field count starts on line 5 (line 2's record spans two lines) */
    EXPECT_ERROR("fields.csv", "text,label\n\"a\nb\",1\nc,0\nd,1,extra\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":5: 3 fields, expected 2 (columns: text, label)");
    EXPECT_ERROR("few.csv", "text,label\r\nonly\r\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":2: 1 field, expected 2 (columns: text, label)");
    EXPECT_ERROR("unterminated.csv", "text,label\nok,1\n\"never closed,0\nmore,1\n", true, NULL, 2,
                 PEFTC_ERR_FORMAT, ":3: unterminated quoted field");
    EXPECT_ERROR("junk.csv", "text,label\n\"quoted\"junk,1\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":2: unexpected character after a closing quote");
    EXPECT_ERROR("nocol.csv", "\n\nsentence,label\nx,1\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":3: missing column 'text' (columns: sentence, label)");
    EXPECT_ERROR("nolabelcol.csv", "text,score\nx,1\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: missing column 'label' (columns: text, score)");
    EXPECT_ERROR("emptylabel.csv", "text,label\nx,1\ny,\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":3: empty value in column 'label'");
    EXPECT_ERROR("badutf8.csv", "text,label\nok,1\n\"bad \xC3\x28\",0\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":3: invalid UTF-8 in column 'text' at byte 4");
    EXPECT_ERROR("headeronly.csv", "text,label\n", true, NULL, 2, PEFTC_ERR_FORMAT, ": no records");
    EXPECT_ERROR("range.csv", "text,label\nx,2\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":2: label 2 out of range [0, 2)");
}

TEST(dataset_jsonl_errors_name_file_and_line)
{
    EXPECT_ERROR("invalid.jsonl", "{\"text\": \"a\", \"label\": 0}\n\n{\"text\": \"b\" \"label\": 1}\n", true,
                 NULL, 2, PEFTC_ERR_FORMAT, ":3: invalid JSON at column 14");
    EXPECT_ERROR("trailing.jsonl", "{\"text\": \"a\", \"label\": 0} x\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: unexpected text after the record at column 27");
    EXPECT_ERROR("notobj.jsonl", "{\"text\": \"a\", \"label\": 0}\n[\"b\", 1]\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":2: record is not a JSON object");
    EXPECT_ERROR("missing.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"sentence\": \"b\", \"label\": 1}\n", true,
                 NULL, 2, PEFTC_ERR_FORMAT, ":2: missing column 'text' (columns: sentence, label)");
    EXPECT_ERROR("textnum.jsonl", "{\"text\": 12, \"label\": 0}\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: column 'text' is not a string");
    EXPECT_ERROR("labelbool.jsonl", "{\"text\": \"a\", \"label\": true}\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: column 'label' is a boolean, expected an integer or a string");
    EXPECT_ERROR("labelfrac.jsonl", "{\"text\": \"a\", \"label\": 0.5}\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: label 0.5 is not an integer");
    EXPECT_ERROR("labelneg.jsonl", "{\"text\": \"a\", \"label\": -1}\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: label -1 out of range [0, 2)");
    EXPECT_ERROR("labelrange.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": 3}\n", true,
                 NULL, 3, PEFTC_ERR_FORMAT, ":2: label 3 out of range [0, 3)");
    EXPECT_ERROR("labelname.jsonl", "{\"text\": \"a\", \"label\": \"neutral\"}\n", true, names2, 2,
                 PEFTC_ERR_FORMAT, ":1: unknown label 'neutral' (known: NEGATIVE, POSITIVE)");
    EXPECT_ERROR("labelnomap.jsonl", "{\"text\": \"a\", \"label\": \"pos\"}\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: label 'pos' is not an integer and no id2label was given to map it");
    EXPECT_ERROR("nolabel.jsonl", "{\"text\": \"a\", \"label\": 0}\r\n{\"text\": \"b\"}\r\n", true, NULL, 2,
                 PEFTC_ERR_FORMAT, ":2: missing column 'label' (columns: text)");
    EXPECT_ERROR("nulllabel.jsonl", "{\"text\": \"a\", \"label\": null}\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":1: column 'label' is null");
    EXPECT_ERROR("utf8.jsonl", "{\"text\": \"ok\", \"label\": 0}\n{\"text\": \"x\xED\xA0\x80\", \"label\": 0}\n",
                 true, NULL, 2, PEFTC_ERR_FORMAT, ":2: invalid UTF-8 in column 'text' at byte 1");
    EXPECT_ERROR("blank.jsonl", "\n  \r\n\n", true, NULL, 2, PEFTC_ERR_FORMAT, ": no records");
    EXPECT_ERROR("empty.jsonl", "", true, NULL, 2, PEFTC_ERR_FORMAT, ": no records");
    EXPECT_ERROR("data.txt", "x\n", true, NULL, 2, PEFTC_ERR_UNSUPPORTED,
                 ": unknown dataset format (the name must end in .jsonl, .json, .csv or .tsv)");
}

TEST(dataset_missing_file_is_io_error)
{
    pc_dataset *ds;
    pc_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/does-not-exist.jsonl", pc_test_tmpdir());
    CHECK_INT_EQ(pc_dataset_load(path, "text", "label", NULL, 2, true, &ds, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, "does-not-exist.jsonl: cannot open");
}

TEST(dataset_labels_optional_and_bom_crlf_jsonl)
{
    char path[512];
    WRITE_TMP(path, "unlabelled.jsonl",
              "\xEF\xBB\xBF{\"text\": \"first\"}\r\n"
              "{\"text\": \"second\", \"label\": 1}\r\n"
              "{\"text\": \"third\", \"label\": null}\r\n");
    pc_dataset *ds;
    pc_error err = {0};
    pc_status s = pc_dataset_load(path, "text", "label", NULL, 2, false, &ds, &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    CHECK_INT_EQ(ds->n, 3);
    CHECK_STR_EQ(ds->texts[0], "first");
    CHECK_STR_EQ(ds->texts[2], "third");
    CHECK_INT_EQ(ds->labels[0], -1);
    CHECK_INT_EQ(ds->labels[1], 1);
    CHECK_INT_EQ(ds->labels[2], -1);
    pc_dataset_free(ds);

    WRITE_TMP(path, "unlabelled.csv", "text\nalpha\nbeta\n");
    s = pc_dataset_load(path, "text", "label", NULL, 2, false, &ds, &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    CHECK_INT_EQ(ds->n, 2);
    CHECK_STR_EQ(ds->texts[1], "beta");
    CHECK_INT_EQ(ds->labels[0], -1);
    CHECK_INT_EQ(ds->labels[1], -1);
    pc_dataset_free(ds);
}

TEST(dataset_json_array_file)
{
    char path[512];
    WRITE_TMP(path, "array.json",
              "[\n"
              "  {\"text\": \"one\", \"label\": \"POSITIVE\"},\n"
              "  {\"text\": \"two\",\n"
              "   \"label\": 0}\n"
              "]\n");
    pc_dataset *ds;
    pc_error err = {0};
    pc_status s = pc_dataset_load(path, "text", "label", names2, 2, true, &ds, &err);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    CHECK_INT_EQ(ds->n, 2);
    CHECK_STR_EQ(ds->texts[1], "two");
    CHECK_INT_EQ(ds->labels[0], 1);
    CHECK_INT_EQ(ds->labels[1], 0);
    pc_dataset_free(ds);

    EXPECT_ERROR("array_bad.json", "[\n {\"text\": \"a\", \"label\": 0},\n {\"text\": \"b\", \"label\": 5}\n]\n",
                 true, NULL, 2, PEFTC_ERR_FORMAT, ":3: label 5 out of range [0, 2)");
    EXPECT_ERROR("array_sep.json", "[\n {\"text\": \"a\", \"label\": 0}\n {\"text\": \"b\"}\n]\n", true, NULL, 2,
                 PEFTC_ERR_FORMAT, ":3: expected ',' or ']' in the JSON array");
    EXPECT_ERROR("array_open.json", "[\n {\"text\": \"a\",\n  \"label\": 0\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":2: invalid JSON: the record is incomplete");
    EXPECT_ERROR("array_inner.json", "[\n {\"text\": \"a\",\n  \"label\" 0}\n]\n", true, NULL, 2, PEFTC_ERR_FORMAT,
                 ":2: invalid JSON in this record (at line 3, column 11)");
    EXPECT_ERROR("open.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\",\n", true, NULL, 2,
                 PEFTC_ERR_FORMAT, ":2: invalid JSON: the record is incomplete");
}

/* Counts from the dataset's README and a Python json pass over the files. */
static void check_rotten_tomatoes(const char *rel, int rows, int positives, long text_bytes)
{
    const char *path = pc_test_shared(rel);
    if (!path) { pc_test_skip("../shared/data/rotten_tomatoes not present"); return; }
    pc_dataset *ds;
    pc_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pc_status s = pc_dataset_load(path, "text", "label", NULL, 2, true, &ds, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_MSG(s == PEFTC_OK, "%s", err.msg);
    if (s) return;
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK_MSG(ms < 2000, "loading %s took %.0f ms", rel, ms);
    CHECK_INT_EQ(ds->n, rows);
    int pos = 0;
    long bytes = 0;
    for (int i = 0; i < ds->n; i++) {
        pos += ds->labels[i] == 1;
        CHECK(ds->labels[i] == 0 || ds->labels[i] == 1);
        bytes += (long)strlen(ds->texts[i]);
    }
    CHECK_INT_EQ(pos, positives);
    CHECK_INT_EQ(bytes, text_bytes);
    pc_dataset_free(ds);
}

TEST(dataset_rotten_tomatoes_train)
{
    check_rotten_tomatoes("data/rotten_tomatoes/train.jsonl", 8530, 4265, 972368);
    const char *path = pc_test_shared("data/rotten_tomatoes/train.jsonl");
    if (!path) return;
    pc_dataset *ds;
    pc_error err = {0};
    if (pc_dataset_load(path, "text", "label", NULL, 2, true, &ds, &err) != PEFTC_OK) return;
    CHECK_STR_EQ(ds->texts[0], "like leon , it's frustrating and still oddly likable .");
    CHECK_INT_EQ(ds->labels[0], 1);
    CHECK(strstr(ds->texts[353], "hmmm\xC2\x85might") != NULL);  /* the \u0085 escape of line 354 */
    CHECK_STR_EQ(ds->texts[8529], "perhaps the best sports movie i've ever seen .");
    pc_dataset_free(ds);
}

TEST(dataset_rotten_tomatoes_validation)
{
    check_rotten_tomatoes("data/rotten_tomatoes/validation.jsonl", 1066, 533, 121875);
}
