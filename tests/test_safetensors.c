#include "testlib.h"
#include "formats/json.h"
#include "formats/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------ */

static void tmp_path(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "%s/st_%s", pc_test_tmpdir(), name);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) { CHECK_MSG(0, "cannot create %s", path); return; }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Whole file into a malloc'ed buffer; *n = its size. NULL if unreadable. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    *n = buf ? fread(buf, 1, (size_t)size, f) : 0;
    fclose(f);
    return buf;
}

/* A safetensors file from parts: u64 LE length field, header text, data. */
static void write_st_raw(const char *path, uint64_t len_field, const char *header, const void *data, size_t ndata)
{
    size_t hlen = strlen(header), total = 8 + hlen + ndata;
    unsigned char *buf = malloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len_field >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (ndata) memcpy(buf + 8 + hlen, data, ndata);
    write_bytes(path, buf, total);
    free(buf);
}

/* Writes a well-formed length field for header, opens the file and expects
 * status code with needle in the message (which must also name the file). */
#define EXPECT_OPEN_FAILS(header, data, ndata, code, needle) \
    expect_open_fails(__LINE__, header, strlen(header), data, ndata, code, needle)
static void expect_open_fails(int line, const char *header, uint64_t len_field, const void *data, size_t ndata,
                              pc_status code, const char *needle)
{
    static int counter;
    char path[512], name[64];
    snprintf(name, sizeof name, "bad_%d.safetensors", counter++);
    tmp_path(path, sizeof path, name);
    write_st_raw(path, len_field, header, data, ndata);
    pc_error err = {0};
    pc_safetensors *st = (pc_safetensors *)1;
    pc_status s = pc_st_open(path, &st, &err);
    if (s != code) pc_test_fail(__FILE__, line, "status %d, expected %d (%s)", s, code, err.msg);
    if (st) pc_test_fail(__FILE__, line, "handle not NULL after failure");
    if (!strstr(err.msg, needle)) pc_test_fail(__FILE__, line, "\"%s\" does not contain \"%s\"", err.msg, needle);
    if (!strstr(err.msg, path)) pc_test_fail(__FILE__, line, "\"%s\" does not name the file", err.msg);
}

static pc_st_item item(const char *name, pc_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    pc_st_item it = { .name = name, .dtype = dt, .ndim = ndim, .data = data };
    for (int i = 0; i < ndim; i++) it.shape[i] = shape[i];
    return it;
}

static bool files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Items for every tensor of an open container, in its iteration order. */
static pc_st_item *items_of(const pc_safetensors *st)
{
    int n = pc_st_count(st);
    pc_st_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
    for (int i = 0; i < n; i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        items[i] = item(t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    return items;
}

/* Reads src and writes its tensors and metadata to dst with pc_st_write. */
static void rewrite(const char *src, const char *dst)
{
    pc_error err = {0};
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open(src, &st, &err), PEFTC_OK);
    if (!st) { CHECK_MSG(0, "%s", err.msg); return; }
    pc_st_item *items = items_of(st);
    CHECK_INT_EQ(pc_st_write(dst, items, pc_st_count(st), pc_st_metadata(st), &err), PEFTC_OK);
    free(items);
    pc_st_close(st);
}

/* ---- reader ------------------------------------------------------------- */

/* Header padded so that 8 + N is odd: the F32 data is misaligned in the
 * mapping, and the reader must still read it (UBSan flags a float* load). */
TEST(st_reads_hand_built_file_with_unaligned_data)
{
    char header[512];
    snprintf(header, sizeof header, "%s",
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"h\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[8,12]},"
             "\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
             "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[12,20]}}");
    while ((8 + strlen(header)) % 4 != 1) strcat(header, " ");
    const float w[2] = { 1.5f, -2.25f };
    unsigned char data[20];
    memcpy(data, w, 8);
    const unsigned char h[4] = { 0x80, 0x3F, 0xA0, 0xC0 }; /* bf16 1.0, -5.0 */
    memcpy(data + 8, h, 4);
    const int64_t s = -123456789012LL;
    memcpy(data + 12, &s, 8);
    char path[512];
    tmp_path(path, sizeof path, "unaligned.safetensors");
    write_st_raw(path, strlen(header), header, data, sizeof data);

    pc_error err = {0};
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_OK);
    if (!st) return;
    CHECK_INT_EQ(pc_st_count(st), 3);
    CHECK_STR_EQ(pc_st_at(st, 0)->name, "w"); /* data-offset order */
    CHECK_STR_EQ(pc_st_at(st, 2)->name, "s");
    CHECK(pc_st_at(st, 3) == NULL && pc_st_at(st, -1) == NULL);
    const pc_st_tensor *tw = pc_st_find(st, "w"), *th = pc_st_find(st, "h"), *ts = pc_st_find(st, "s");
    CHECK(tw && th && ts && !pc_st_find(st, "x") && !pc_st_find(st, "__metadata__"));
    if (!tw || !th || !ts) { pc_st_close(st); return; }
    CHECK((uintptr_t)tw->data % 4 != 0);
    CHECK_STR_EQ(tw->file, path);
    CHECK_INT_EQ(tw->dtype, PC_DT_F32);
    CHECK_INT_EQ(tw->ndim, 1);
    CHECK_INT_EQ(tw->shape[0], 2);
    CHECK_INT_EQ(tw->nbytes, 8);
    float out[2] = { 0, 0 };
    CHECK_INT_EQ(pc_st_read_f32(tw, out, 2, &err), PEFTC_OK);
    CHECK(out[0] == 1.5f && out[1] == -2.25f);
    const int64_t hshape[2] = { 2, 1 };
    CHECK_INT_EQ(pc_st_read_f32_shaped(th, 2, hshape, out, &err), PEFTC_OK);
    CHECK(out[0] == 1.0f && out[1] == -5.0f);
    CHECK_INT_EQ(ts->ndim, 0);
    CHECK_INT_EQ(pc_st_numel(ts), 1);
    int64_t sv;
    memcpy(&sv, ts->data, 8);
    CHECK_INT_EQ(sv, -123456789012LL);
    const cJSON *meta = pc_st_metadata(st);
    CHECK(meta != NULL);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "k")), "v");
    pc_st_close(st);
}

/* A header with no tensors is a valid (empty) file; it once did NULL + 0 pointer arithmetic (clang's UBSan, found
 * by fuzz_safetensors; tests/fuzz/regressions/safetensors/). */
TEST(st_opens_a_file_without_tensors)
{
    char path[512];
    pc_error err = {0};
    pc_safetensors *st = NULL;
    tmp_path(path, sizeof path, "no_tensors.safetensors");
    write_bytes(path, "\x02\0\0\0\0\0\0\0{}", 10);
    CHECK_MSG(pc_st_open(path, &st, &err) == PEFTC_OK, "%s", err.msg);
    CHECK_INT_EQ(pc_st_count(st), 0);
    CHECK(pc_st_find(st, "x") == NULL);
    pc_st_close(st);
}

TEST(st_rejects_short_file_and_bad_header_length)
{
    char path[512];
    pc_error err = {0};
    pc_safetensors *st;
    tmp_path(path, sizeof path, "short.safetensors");
    write_bytes(path, "\x02\0\0\0\0", 5);
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "file is 5 bytes, too short");
    tmp_path(path, sizeof path, "empty.safetensors");
    write_bytes(path, "", 0);
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "file is 0 bytes");
    expect_open_fails(__LINE__, "{}", 100000001, NULL, 0, PEFTC_ERR_FORMAT,
                      "header length 100000001 exceeds the limit of 100000000 bytes");
    expect_open_fails(__LINE__, "{}      ", 9, NULL, 0, PEFTC_ERR_FORMAT,
                      "header length 9 exceeds the 8 bytes after the length field");
    expect_open_fails(__LINE__, "{}", UINT64_MAX, NULL, 0, PEFTC_ERR_FORMAT, "exceeds the limit");
    tmp_path(path, sizeof path, "missing.safetensors");
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, path);
    CHECK_INT_EQ(pc_st_open(pc_test_tmpdir(), &st, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, "not a regular file");
}

TEST(st_rejects_malformed_header_json)
{
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",", NULL, 0, PEFTC_ERR_FORMAT, "(header):1:");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",", NULL, 0, PEFTC_ERR_FORMAT, "invalid JSON");
    EXPECT_OPEN_FAILS("{\"a\":nul}", NULL, 0, PEFTC_ERR_FORMAT, "(header):1:6: invalid JSON near 'nul}'");
    EXPECT_OPEN_FAILS("        ", NULL, 0, PEFTC_ERR_FORMAT, "unexpected end of input");
    EXPECT_OPEN_FAILS("[1,2]", NULL, 0, PEFTC_ERR_FORMAT, "header must be a JSON object, got an array");
    EXPECT_OPEN_FAILS("\"x\"", NULL, 0, PEFTC_ERR_FORMAT, "header must be a JSON object, got a string");
    EXPECT_OPEN_FAILS("{\"\xC3\x28\":1}", NULL, 0, PEFTC_ERR_FORMAT, "header is not valid UTF-8 (byte 2)");
}

TEST(st_rejects_bad_entries)
{
    const unsigned char d[16] = {0};
    EXPECT_OPEN_FAILS("{\"a\":5}", NULL, 0, PEFTC_ERR_FORMAT, "tensor 'a': entry must be an object, got a number");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "tensor 'a': unknown dtype 'F17'");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "unknown dtype 'f32'");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", d, 1,
                      PEFTC_ERR_UNSUPPORTED, "tensor 'a': dtype F8_E4M3 is not supported");
    EXPECT_OPEN_FAILS("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "tensor 'a': 'dtype' must be a string, got nothing");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "tensor 'a': 'shape' must be an array, got a number");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "tensor 'a': shape[1] must be a non-negative integer");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "shape[0] must be a non-negative integer");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "shape[0] must be a non-negative integer");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", d, 4,
                      PEFTC_ERR_FORMAT, "tensor 'a' has 9 dimensions, at most 8 are supported");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "tensor 'a': 'data_offsets' must be two non-negative integers");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", d, 4, PEFTC_ERR_FORMAT,
                      "'data_offsets' must be two non-negative integers");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", d, 4, PEFTC_ERR_FORMAT,
                      "'data_offsets' must be two non-negative integers");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", d, 4, PEFTC_ERR_FORMAT,
                      "'data_offsets' must be two non-negative integers");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", d, 8, PEFTC_ERR_FORMAT,
                      "tensor 'a': data_offsets [8, 4] begin after end");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 8, PEFTC_ERR_FORMAT,
                      "tensor 'a': data_offsets [4, 12] end beyond the data section of 8 bytes");
}

TEST(st_rejects_size_mismatch_and_overflow)
{
    const unsigned char d[16] = {0};
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8, PEFTC_ERR_FORMAT,
                      "tensor 'a': data_offsets [0, 8] hold 8 bytes but F32 shape [3] needs 12");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", d, 16, PEFTC_ERR_FORMAT,
                      "hold 16 bytes but BF16 shape [2, 2] needs 8");
    /* 2^32 * 2^32 * 4 bytes wraps a 64-bit count to 0, which would match [0, 0]. */
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
                      NULL, 0, PEFTC_ERR_FORMAT, "tensor 'a': shape overflows a 64-bit byte count");
}

TEST(st_rejects_overlap_gap_and_trailing_bytes)
{
    const unsigned char d[16] = {0};
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                      d, 12, PEFTC_ERR_FORMAT, "tensor 'b' (bytes [4, 12)) overlaps tensor 'a'");
    EXPECT_OPEN_FAILS("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                      d, 12, PEFTC_ERR_FORMAT,
                      "bytes [4, 8) of the data section belong to no tensor (gap before tensor 'b')");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8, PEFTC_ERR_FORMAT,
                      "bytes [0, 4) of the data section belong to no tensor");
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8, PEFTC_ERR_FORMAT,
                      "the data section has 8 bytes but the tensors cover only the first 4");
    EXPECT_OPEN_FAILS("{}", d, 3, PEFTC_ERR_FORMAT, "the data section has 3 bytes but the tensors cover only the first 0");
}

TEST(st_rejects_duplicate_names_and_bad_metadata)
{
    const unsigned char d[8] = {0};
    EXPECT_OPEN_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      d, 8, PEFTC_ERR_FORMAT, "duplicate key 'a' in the top-level object");
    EXPECT_OPEN_FAILS("{\"__metadata__\":[\"pt\"]}", NULL, 0, PEFTC_ERR_FORMAT,
                      "__metadata__ must be an object of strings, got an array");
    EXPECT_OPEN_FAILS("{\"__metadata__\":{\"format\":\"pt\",\"total\":3}}", NULL, 0, PEFTC_ERR_FORMAT,
                      "__metadata__ key 'total' must hold a string, got a number");
    EXPECT_OPEN_FAILS("{\"__metadata__\":{\"format\":\"pt\",\"format\":\"np\"}}", NULL, 0, PEFTC_ERR_FORMAT,
                      "duplicate key 'format' in object '__metadata__'");
}

/* Zero-sized tensors share an offset with their neighbour; safetensors accepts that. */
TEST(st_accepts_zero_sized_tensors_and_no_tensors)
{
    const float d[2] = { 3.0f, 4.0f };
    char path[512];
    tmp_path(path, sizeof path, "zero.safetensors");
    const char *header = "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"y\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[8,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    write_st_raw(path, strlen(header), header, d, sizeof d);
    pc_error err = {0};
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_OK);
    CHECK_INT_EQ(pc_st_count(st), 4);
    const pc_st_tensor *z = pc_st_find(st, "z");
    CHECK(z && pc_st_numel(z) == 0 && z->nbytes == 0);
    CHECK(pc_st_metadata(st) == NULL);
    float out[1] = { -1 };
    if (z) CHECK_INT_EQ(pc_st_read_f32(z, out, 0, &err), PEFTC_OK);
    pc_st_close(st);

    tmp_path(path, sizeof path, "none.safetensors");
    write_st_raw(path, 8, "{}      ", NULL, 0);
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_OK);
    CHECK_INT_EQ(pc_st_count(st), 0);
    CHECK(pc_st_find(st, "a") == NULL);
    pc_st_close(st);
}

/* The fixture's "<x>.f32" tensors are PyTorch's own float32 conversions of "<x>". */
TEST(st_converts_f16_and_bf16_like_pytorch)
{
    pc_error err = {0};
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open(pc_test_fixture("safetensors/dtypes.safetensors"), &st, &err), PEFTC_OK);
    if (!st) { CHECK_MSG(0, "%s", err.msg); return; }
    const char *names[2][2] = { { "f16", "f16.f32" }, { "bf16", "bf16.f32" } };
    for (int k = 0; k < 2; k++) {
        const pc_st_tensor *t = pc_st_find(st, names[k][0]), *ref = pc_st_find(st, names[k][1]);
        CHECK(t && ref);
        if (!t || !ref) continue;
        float got[16], want[16];
        CHECK_INT_EQ(pc_st_read_f32(t, got, 16, &err), PEFTC_OK);
        CHECK_INT_EQ(pc_st_read_f32(ref, want, 16, &err), PEFTC_OK);
        for (int i = 0; i < 16; i++) /* bitwise: covers -0, NaN and infinities */
            CHECK_MSG(memcmp(&got[i], &want[i], 4) == 0, "%s[%d] = %a, PyTorch gives %a", names[k][0], i, got[i], want[i]);
    }
    /* A few entries by hand: f16 0x3555 = (1 + 341/1024) / 4, 0x0001 = 2^-24, 0x03FF = 1023 * 2^-24, 0x7BFF = 65504. */
    float f16[16];
    const pc_st_tensor *t = pc_st_find(st, "f16");
    if (t && pc_st_read_f32(t, f16, 16, &err) == PEFTC_OK) {
        CHECK(f16[11] == 0.333251953125f);
        CHECK(f16[2] == 0x1p-24f);
        CHECK(f16[3] == 1023 * 0x1p-24f);
        CHECK(f16[7] == 65504.0f);
        CHECK(f16[1] == 0.0f && signbit(f16[1]));
    }
    pc_st_close(st);
}

TEST(st_read_f32_errors_name_the_tensor)
{
    pc_error err = {0};
    pc_safetensors *st = NULL;
    const char *path = pc_test_fixture("safetensors/dtypes.safetensors");
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_OK);
    if (!st) return;
    float out[16];
    const pc_st_tensor *ids = pc_st_find(st, "ids"), *f16 = pc_st_find(st, "f16.f32");
    if (!ids || !f16) { CHECK(0); pc_st_close(st); return; }
    CHECK_INT_EQ(pc_st_read_f32(ids, out, 3, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "tensor 'ids' has dtype I64, expected F32, F16 or BF16");
    CHECK_CONTAINS(err.msg, path);
    CHECK_INT_EQ(pc_st_read_f32(f16, out, 15, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "tensor 'f16.f32' has 16 elements, expected 15");
    const int64_t want[2] = { 8, 2 };
    CHECK_INT_EQ(pc_st_read_f32_shaped(f16, 2, want, out, &err), PEFTC_ERR_FORMAT);
    char msg[600];
    snprintf(msg, sizeof msg, "%s: tensor 'f16.f32' has shape [2, 8], expected [8, 2]", path);
    CHECK_STR_EQ(err.msg, msg);
    CHECK_INT_EQ(pc_st_read_f32_shaped(f16, 1, (const int64_t[]){ 16 }, out, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "has shape [2, 8], expected [16]");
    pc_st_close(st);
}

/* ---- writer ------------------------------------------------------------- */

/* "a" F32 [2,3] and "b" I64 [2]: I64 sorts before F32 (dtype descending), so
 * "b" comes first although "a" < "b". The header is 143 bytes + 1 space of padding. */
TEST(st_write_exact_bytes_for_two_tensors)
{
    const float a[6] = { 0, 1, 2, 3, 4, 5 };
    const int64_t b[2] = { 7, -1 };
    pc_st_item items[2] = { item("a", PC_DT_F32, 2, (const int64_t[]){ 2, 3 }, a),
                            item("b", PC_DT_I64, 1, (const int64_t[]){ 2 }, b) };
    char path[512];
    tmp_path(path, sizeof path, "two.safetensors");
    pc_error err = {0};
    CHECK_INT_EQ(pc_st_write(path, items, 2, NULL, &err), PEFTC_OK);
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]}}";
    CHECK_INT_EQ(strlen(header), 143);
    unsigned char want[8 + 144 + 40];
    memset(want, 0, 8);
    want[0] = 144;
    memcpy(want + 8, header, 143);
    want[8 + 143] = ' ';
    memcpy(want + 152, b, 16);
    memcpy(want + 168, a, 24);
    size_t n = 0;
    unsigned char *got = slurp(path, &n);
    CHECK_INT_EQ(n, sizeof want);
    CHECK(got && n == sizeof want && memcmp(got, want, n) == 0);
    free(got);
}

/* The Rust library's test_empty vector: no tensors, metadata {"framework":"pt"}. */
TEST(st_write_matches_rust_empty_vector)
{
    static const unsigned char want[48] = {
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
        95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
        116, 34, 125, 125, 32, 32, 32, 32, 32 };
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "framework", "pt");
    char path[512];
    tmp_path(path, sizeof path, "empty_meta.safetensors");
    pc_error err = {0};
    CHECK_INT_EQ(pc_st_write(path, NULL, 0, meta, &err), PEFTC_OK);
    size_t n = 0;
    unsigned char *got = slurp(path, &n);
    CHECK(got && n == sizeof want && memcmp(got, want, n) == 0);
    free(got);
    cJSON_Delete(meta);
}

TEST(st_write_orders_by_dtype_then_name)
{
    const unsigned char z[8] = {0};
    pc_st_item items[] = {
        item("layer.2", PC_DT_F32, 1, (const int64_t[]){ 1 }, z),
        item("x", PC_DT_BF16, 1, (const int64_t[]){ 1 }, z),
        item("layer.10", PC_DT_F32, 1, (const int64_t[]){ 1 }, z),
        item("m", PC_DT_U8, 1, (const int64_t[]){ 3 }, z),
        item("idx", PC_DT_I64, 1, (const int64_t[]){ 1 }, z),
        item("a", PC_DT_BF16, 1, (const int64_t[]){ 1 }, z),
        item("w", PC_DT_F64, 0, NULL, z),
        item("B", PC_DT_F32, 1, (const int64_t[]){ 1 }, z),
    };
    const char *want[] = { "idx", "w", "B", "layer.10", "layer.2", "a", "x", "m" };
    const int64_t begin[] = { 0, 8, 16, 20, 24, 28, 30, 32 };
    char path[512];
    tmp_path(path, sizeof path, "order.safetensors");
    pc_error err = {0};
    CHECK_INT_EQ(pc_st_write(path, items, 8, NULL, &err), PEFTC_OK);
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_OK);
    CHECK_INT_EQ(pc_st_count(st), 8);
    for (int i = 0; i < 8 && i < pc_st_count(st); i++) {
        const pc_st_tensor *t = pc_st_at(st, i);
        CHECK_STR_EQ(t->name, want[i]);
        CHECK_INT_EQ((const char *)t->data - (const char *)pc_st_at(st, 0)->data, begin[i]);
    }
    pc_st_close(st);
    size_t n = 0;
    unsigned char *got = slurp(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; got && i >= 0; i--) hlen = hlen << 8 | got[i];
    CHECK_INT_EQ(hlen % 8, 0);
    CHECK_INT_EQ(n, 8 + hlen + 35);
    free(got);
}

TEST(st_write_escapes_names_and_round_trips)
{
    const char *odd = "q\"b\\s\nn\x01\xc3\xa9";
    const double f64[3] = { 1.0 / 3.0, -0.0, 1e300 };
    const uint8_t mask[2] = { 1, 0 };
    const uint16_t h[1] = { 0x3C00 };
    pc_st_item items[] = {
        item(odd, PC_DT_F64, 1, (const int64_t[]){ 3 }, f64),
        item("mask", PC_DT_BOOL, 2, (const int64_t[]){ 1, 2 }, mask),
        item("h", PC_DT_F16, 8, (const int64_t[]){ 1, 1, 1, 1, 1, 1, 1, 1 }, h),
        item("empty", PC_DT_I32, 2, (const int64_t[]){ 4, 0 }, NULL),
    };
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "note", "line\nbreak");
    char path[512];
    tmp_path(path, sizeof path, "roundtrip.safetensors");
    pc_error err = {0};
    CHECK_INT_EQ(pc_st_write(path, items, 4, meta, &err), PEFTC_OK);
    size_t n = 0;
    unsigned char *raw = slurp(path, &n);
    if (raw) raw[n - 1] = 0; /* the last data byte; the header is text before it */
    CHECK(raw && strstr((char *)raw + 8, "\"q\\\"b\\\\s\\nn\\u0001\xc3\xa9\":{\"dtype\":\"F64\""));
    CHECK(raw && strstr((char *)raw + 8, "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"line\\nbreak\"},"));
    free(raw);

    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open(path, &st, &err), PEFTC_OK);
    if (!st) { cJSON_Delete(meta); return; }
    CHECK(cJSON_Compare(pc_st_metadata(st), meta, 1));
    const pc_st_tensor *t = pc_st_find(st, odd);
    CHECK(t && t->dtype == PC_DT_F64 && t->nbytes == 24 && memcmp(t->data, f64, 24) == 0);
    t = pc_st_find(st, "mask");
    CHECK(t && t->dtype == PC_DT_BOOL && t->ndim == 2 && t->shape[1] == 2 && memcmp(t->data, mask, 2) == 0);
    t = pc_st_find(st, "h");
    CHECK(t && t->ndim == 8 && t->nbytes == 2);
    float one = 0;
    if (t) CHECK_INT_EQ(pc_st_read_f32(t, &one, 1, &err), PEFTC_OK);
    CHECK(one == 1.0f);
    t = pc_st_find(st, "empty");
    CHECK(t && t->dtype == PC_DT_I32 && t->shape[0] == 4 && t->shape[1] == 0 && t->nbytes == 0);
    pc_st_close(st);
    cJSON_Delete(meta);
}

TEST(st_write_rejects_bad_items_and_leaves_no_file)
{
    const float d[2] = { 1, 2 };
    char path[512];
    tmp_path(path, sizeof path, "rejected.safetensors");
    pc_error err = {0};
    struct stat sb;
    pc_st_item dup[] = { item("a", PC_DT_F32, 1, (const int64_t[]){ 2 }, d),
                         item("a", PC_DT_BF16, 1, (const int64_t[]){ 2 }, d) };
    CHECK_INT_EQ(pc_st_write(path, dup, 2, NULL, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "duplicate tensor name 'a'");
    CHECK_CONTAINS(err.msg, path);
    pc_st_item nodata[] = { item("w", PC_DT_F32, 2, (const int64_t[]){ 2, 3 }, NULL) };
    CHECK_INT_EQ(pc_st_write(path, nodata, 1, NULL, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "tensor 'w' needs 24 bytes of data but data is NULL");
    pc_st_item neg[] = { item("w", PC_DT_F32, 1, (const int64_t[]){ -2 }, d) };
    CHECK_INT_EQ(pc_st_write(path, neg, 1, NULL, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "tensor 'w' has a negative or oversized shape");
    pc_st_item deep[] = { item("w", PC_DT_F32, 1, (const int64_t[]){ 2 }, d) };
    deep[0].ndim = 9;
    CHECK_INT_EQ(pc_st_write(path, deep, 1, NULL, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "tensor 'w' has 9 dimensions");
    pc_st_item reserved[] = { item("__metadata__", PC_DT_F32, 1, (const int64_t[]){ 2 }, d) };
    CHECK_INT_EQ(pc_st_write(path, reserved, 1, NULL, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "'__metadata__' is reserved");
    pc_st_item badutf[] = { item("w\xff", PC_DT_F32, 1, (const int64_t[]){ 2 }, d) };
    CHECK_INT_EQ(pc_st_write(path, badutf, 1, NULL, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "is not valid UTF-8");
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddNumberToObject(meta, "step", 3);
    CHECK_INT_EQ(pc_st_write(path, deep, 0, meta, &err), PEFTC_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "__metadata__ key 'step' must hold a string, got a number");
    cJSON_Delete(meta);
    CHECK(stat(path, &sb) != 0);
}

/* tools/make_safetensors_fixture.py writes this file with its own writer
 * following the Rust library's rules; every dtype and an escaped name. */
TEST(st_write_reproduces_reference_fixture)
{
    char path[512];
    tmp_path(path, sizeof path, "dtypes_copy.safetensors");
    rewrite(pc_test_fixture("safetensors/dtypes.safetensors"), path);
    CHECK(files_equal(path, pc_test_fixture("safetensors/dtypes.safetensors")));
}

/* Written by tools/make_distilbert_fixtures.py, another independent writer (F32 and I64). */
TEST(st_write_reproduces_distilbert_fixture)
{
    const char *src = pc_test_fixture("distilbert_tiny/qv/case.safetensors");
    struct stat sb;
    if (stat(src, &sb) != 0) SKIP("tests/fixtures/distilbert_tiny/qv/case.safetensors not present");
    char path[512];
    tmp_path(path, sizeof path, "distilbert_case_copy.safetensors");
    rewrite(src, path);
    CHECK(files_equal(path, src));
}

/* ---- sharded model directories ----------------------------------------- */

/* dir = tmpdir/st_<name>/ with shard files holding the given tensors and the index text. */
static void make_sharded_dir(char *dir, size_t cap, const char *name, const char *index_json,
                             const char *const *shard1, int n1, const char *const *shard2, int n2)
{
    tmp_path(dir, cap, name);
    CHECK(mkdir(dir, 0755) == 0);
    const float v[4] = { 1, 2, 3, 4 };
    pc_st_item items[8];
    char path[600];
    pc_error err = {0};
    for (int s = 0; s < 2; s++) {
        const char *const *names = s ? shard2 : shard1;
        int n = s ? n2 : n1;
        for (int i = 0; i < n; i++) items[i] = item(names[i], PC_DT_F32, 1, (const int64_t[]){ 4 }, v);
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
        CHECK_INT_EQ(pc_st_write(path, items, n, NULL, &err), PEFTC_OK);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    if (f) { fputs(index_json, f); fclose(f); }
}

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

TEST(st_sharded_model_dir_loads_every_shard)
{
    char dir[512];
    const char *s1[] = { "model.embed.weight", "model.layers.0.w" }, *s2[] = { "lm_head.weight" };
    make_sharded_dir(dir, sizeof dir, "sharded_ok",
                     "{\"metadata\":{\"total_size\":48},\"weight_map\":{\"lm_head.weight\":\"" SHARD2 "\","
                     "\"model.embed.weight\":\"" SHARD1 "\",\"model.layers.0.w\":\"" SHARD1 "\"}}",
                     s1, 2, s2, 1);
    pc_error err = {0};
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_OK);
    if (!st) { CHECK_MSG(0, "%s", err.msg); return; }
    CHECK_INT_EQ(pc_st_count(st), 3);
    const pc_st_tensor *t = pc_st_find(st, "lm_head.weight");
    CHECK(t && strstr(t->file, SHARD2));
    t = pc_st_find(st, "model.layers.0.w");
    CHECK(t && strstr(t->file, SHARD1));
    float out[4];
    if (t) CHECK_INT_EQ(pc_st_read_f32(t, out, 4, &err), PEFTC_OK);
    CHECK(out[3] == 4.0f);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pc_st_metadata(st), "format")), "pt");
    pc_st_close(st);
}

TEST(st_model_dir_prefers_single_file)
{
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "single_dir");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const float v = 2.5f;
    pc_st_item it = item("only", PC_DT_F32, 0, NULL, &v);
    pc_error err = {0};
    CHECK_INT_EQ(pc_st_write(path, &it, 1, NULL, &err), PEFTC_OK);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_bytes(path, "not json", 8);
    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_OK);
    CHECK_INT_EQ(pc_st_count(st), 1);
    CHECK(pc_st_find(st, "only") != NULL);
    pc_st_close(st);
    tmp_path(dir, sizeof dir, "empty_dir");
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_IO);
    CHECK(st == NULL);
    CHECK_CONTAINS(err.msg, dir);
    CHECK_CONTAINS(err.msg, "neither model.safetensors nor model.safetensors.index.json");
}

TEST(st_sharded_index_inconsistencies_are_errors)
{
    char dir[512];
    pc_error err = {0};
    pc_safetensors *st = (pc_safetensors *)1;
    const char *s1[] = { "a", "b" }, *s2[] = { "c" }, *s2dup[] = { "c", "a" };

    make_sharded_dir(dir, sizeof dir, "sharded_missing",
                     "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD1 "\",\"c\":\"" SHARD2 "\","
                     "\"d\":\"" SHARD1 "\"}}", s1, 2, s2, 1);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_FORMAT);
    CHECK(st == NULL);
    CHECK_CONTAINS(err.msg, "model.safetensors.index.json: tensor 'd' is listed for shard '" SHARD1 "' but is not in it");

    make_sharded_dir(dir, sizeof dir, "sharded_moved",
                     "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD2 "\",\"c\":\"" SHARD2 "\"}}",
                     s1, 2, s2, 1);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "tensor 'b' is listed for shard '" SHARD2 "' but is in ");
    CHECK_CONTAINS(err.msg, SHARD1);

    make_sharded_dir(dir, sizeof dir, "sharded_twice",
                     "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"b\":\"" SHARD1 "\",\"c\":\"" SHARD2 "\"}}",
                     s1, 2, s2dup, 2);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "tensor 'a' is in both ");
    CHECK_CONTAINS(err.msg, SHARD1);
    CHECK_CONTAINS(err.msg, SHARD2);

    make_sharded_dir(dir, sizeof dir, "sharded_dupkey",
                     "{\"weight_map\":{\"a\":\"" SHARD1 "\",\"a\":\"" SHARD2 "\"}}", s1, 2, s2, 1);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "duplicate key 'a' in object 'weight_map'");

    make_sharded_dir(dir, sizeof dir, "sharded_escape",
                     "{\"weight_map\":{\"a\":\"../" SHARD1 "\"}}", s1, 2, s2, 1);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "weight_map entry 'a' must be a plain file name");

    make_sharded_dir(dir, sizeof dir, "sharded_nomap", "{\"metadata\":{}}", s1, 2, s2, 1);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "'weight_map' must be an object, got nothing");

    make_sharded_dir(dir, sizeof dir, "sharded_absent_shard",
                     "{\"weight_map\":{\"a\":\"model-00003-of-00002.safetensors\"}}", s1, 2, s2, 1);
    CHECK_INT_EQ(pc_st_open_model_dir(dir, &st, &err), PEFTC_ERR_IO);
    CHECK_CONTAINS(err.msg, "model-00003-of-00002.safetensors: cannot open");
}

/* ---- the real stories260K checkpoint ------------------------------------ */

static long long cfg_int(const cJSON *cfg, const char *key)
{
    long long v = -1;
    pc_error err = {0};
    CHECK_INT_EQ(pc_json_get_int(cfg, key, -1, &v, "config.json", &err), PEFTC_OK);
    return v;
}

static void check_shape(const pc_safetensors *st, const char *name, int64_t d0, int64_t d1, float *buf)
{
    const pc_st_tensor *t = pc_st_find(st, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return;
    pc_error err = {0};
    const int64_t shape[2] = { d0, d1 };
    int ndim = d1 < 0 ? 1 : 2;
    CHECK_MSG(pc_st_read_f32_shaped(t, ndim, shape, buf, &err) == PEFTC_OK, "%s", err.msg);
}

/* Shapes follow from config.json; values are cross-checked against the
 * llama2.c checkpoint stories260K.bin (header of 7 int32, then the token
 * embedding [vocab, dim] and rms_att [layers, dim] as float32). */
TEST(st_stories260K_matches_config_and_llama2c_checkpoint)
{
    const char *dir = pc_test_shared("models/stories260K");
    if (!dir) SKIP("../shared/models/stories260K not available");
    char dirbuf[4096], path[4200];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    snprintf(path, sizeof path, "%s/config.json", dirbuf);
    pc_error err = {0};
    cJSON *cfg = NULL;
    CHECK_INT_EQ(pc_json_parse_file(path, &cfg, &err), PEFTC_OK);
    if (!cfg) return;
    long long dim = cfg_int(cfg, "hidden_size"), hidden = cfg_int(cfg, "intermediate_size");
    long long layers = cfg_int(cfg, "num_hidden_layers"), heads = cfg_int(cfg, "num_attention_heads");
    long long kv = cfg_int(cfg, "num_key_value_heads"), vocab = cfg_int(cfg, "vocab_size");
    long long hd = cfg_int(cfg, "head_dim");
    cJSON_Delete(cfg);
    CHECK(dim == 64 && layers == 5 && vocab == 512);

    pc_safetensors *st = NULL;
    CHECK_INT_EQ(pc_st_open_model_dir(dirbuf, &st, &err), PEFTC_OK);
    if (!st) { CHECK_MSG(0, "%s", err.msg); return; }
    CHECK_INT_EQ(pc_st_count(st), 3 + 9 * layers); /* embed, lm_head, norm + 9 per layer */
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pc_st_metadata(st), "format")), "pt");
    float *buf = malloc((size_t)(vocab * dim) * sizeof *buf);
    float *emb = malloc((size_t)(vocab * dim) * sizeof *emb);
    check_shape(st, "model.embed_tokens.weight", vocab, dim, emb);
    check_shape(st, "lm_head.weight", vocab, dim, buf);
    CHECK(memcmp(buf, emb, (size_t)(vocab * dim) * sizeof *buf) == 0); /* tied: identical copy */
    check_shape(st, "model.norm.weight", dim, -1, buf);
    char name[128];
    for (int l = 0; l < layers; l++) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", l);
        check_shape(st, name, heads * hd, dim, buf);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_proj.weight", l);
        check_shape(st, name, kv * hd, dim, buf);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.v_proj.weight", l);
        check_shape(st, name, kv * hd, dim, buf);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
        check_shape(st, name, dim, heads * hd, buf);
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj.weight", l);
        check_shape(st, name, hidden, dim, buf);
        snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.weight", l);
        check_shape(st, name, hidden, dim, buf);
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        check_shape(st, name, dim, hidden, buf);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        check_shape(st, name, dim, -1, buf);
    }

    snprintf(path, sizeof path, "%s/stories260K.bin", dirbuf);
    FILE *f = fopen(path, "rb");
    int32_t hdr[7] = {0};
    float *ref = malloc((size_t)(vocab * dim) * sizeof *ref);
    CHECK(f && fread(hdr, 4, 7, f) == 7);
    CHECK(hdr[0] == dim && hdr[2] == layers && hdr[5] == vocab);
    CHECK(f && fread(ref, 4, (size_t)(vocab * dim), f) == (size_t)(vocab * dim));
    CHECK(memcmp(ref, emb, (size_t)(vocab * dim) * sizeof *ref) == 0);
    CHECK(f && fread(ref, 4, (size_t)(layers * dim), f) == (size_t)(layers * dim));
    for (int l = 0; l < layers; l++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        check_shape(st, name, dim, -1, buf);
        CHECK_MSG(memcmp(buf, ref + l * dim, (size_t)dim * sizeof *buf) == 0, "%s differs from rms_att[%d]", name, l);
    }
    if (f) fclose(f);
    free(ref);
    free(emb);
    free(buf);
    pc_st_close(st);
}

/* Written by Python (model.safetensors, all F32, sorted by name): our writer
 * reproduces it byte for byte. */
TEST(st_stories260K_rewrite_is_byte_identical)
{
    const char *src = pc_test_shared("models/stories260K/model.safetensors");
    if (!src) SKIP("../shared/models/stories260K/model.safetensors not available");
    char srcbuf[4096], path[512];
    snprintf(srcbuf, sizeof srcbuf, "%s", src);
    tmp_path(path, sizeof path, "stories260K_copy.safetensors");
    rewrite(srcbuf, path);
    CHECK(files_equal(path, srcbuf));
}
