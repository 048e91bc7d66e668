#include "testlib.h"
#include "base/error.h"

TEST(error_fail_formats_message_and_code)
{
    pc_error err = {0};
    pc_status s = pc_fail(&err, PEFTC_ERR_FORMAT, "tensor '%s' offset %d", "a.weight", 12);
    CHECK_INT_EQ(s, PEFTC_ERR_FORMAT);
    CHECK_INT_EQ(err.code, PEFTC_ERR_FORMAT);
    CHECK_STR_EQ(err.msg, "tensor 'a.weight' offset 12");
    pc_error_prefix(&err, "%s", "model.safetensors");
    CHECK_STR_EQ(err.msg, "model.safetensors: tensor 'a.weight' offset 12");
}

TEST(error_fail_accepts_null)
{
    CHECK_INT_EQ(pc_fail(NULL, PEFTC_ERR_IO, "x"), PEFTC_ERR_IO);
}
