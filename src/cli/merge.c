/* Commands that write a model directory:
 * peftc merge — merge_and_unload: the adapter folded into the base weights, written as a complete
 *   Hugging Face model directory that loads without PEFT;
 * peftc quantize — the Linears in bitsandbytes' 4-bit format with config.json's quantization_config,
 *   a directory transformers + bitsandbytes and peftc load as pre-quantized. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "cli/cli.h"
#include "formats/json.h"
#include "models/merge.h"

static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
    "merges.txt", "special_tokens_map.json", "tokenizer.model", "generation_config.json", "added_tokens.json"};

static pc_status copy_tokenizer_files(const char *from, const char *to, pc_error *err)
{
    for (size_t i = 0; i < sizeof tokenizer_files / sizeof tokenizer_files[0]; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof src, "%s/%s", from, tokenizer_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, tokenizer_files[i]);
        if (pc_path_exists(src)) PC_TRY(pc_copy_file(src, dst, err));
    }
    return PEFTC_OK;
}

/* config.json of the base with the merged model's architecture, labels and dtype. */
static pc_status write_config(const pc_model *m, const char *from, const char *to, const char *dtype,
                              cJSON *quant, pc_error *err)
{
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/config.json", from);
    snprintf(dst, sizeof dst, "%s/config.json", to);
    cJSON *c = NULL;
    PC_TRY(pc_json_parse_file(src, &c, err));
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString(m->architecture));
    cJSON_DeleteItemFromObjectCaseSensitive(c, "architectures");
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_DeleteItemFromObjectCaseSensitive(c, "torch_dtype");
    cJSON_AddStringToObject(c, "torch_dtype", dtype);
    if (m->task == PC_TASK_SEQ_CLS) {
        cJSON *id2label = cJSON_CreateObject(), *label2id = cJSON_CreateObject();
        for (int i = 0; i < m->num_labels; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            cJSON_AddStringToObject(id2label, key, m->id2label[i]);
            cJSON_AddNumberToObject(label2id, m->id2label[i], i);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(c, "id2label");
        cJSON_DeleteItemFromObjectCaseSensitive(c, "label2id");
        cJSON_AddItemToObject(c, "id2label", id2label);
        cJSON_AddItemToObject(c, "label2id", label2id);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(c, "quantization_config");
    if (quant) cJSON_AddItemToObject(c, "quantization_config", quant);
    pc_status s = pc_json_write_file_atomic(dst, c, true, err);
    cJSON_Delete(c);
    return s;
}

/* BitsAndBytesConfig.to_dict() as transformers writes it into config.json. */
static cJSON *quantization_config(const pc_config *cfg)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddBoolToObject(q, "_load_in_4bit", true);
    cJSON_AddBoolToObject(q, "_load_in_8bit", false);
    cJSON_AddStringToObject(q, "bnb_4bit_compute_dtype", cfg->bnb_4bit_compute_dtype);
    cJSON_AddStringToObject(q, "bnb_4bit_quant_storage", "uint8");
    cJSON_AddStringToObject(q, "bnb_4bit_quant_type", cfg->bnb_4bit_quant_type);
    cJSON_AddBoolToObject(q, "bnb_4bit_use_double_quant", cfg->bnb_4bit_use_double_quant);
    cJSON_AddBoolToObject(q, "llm_int8_enable_fp32_cpu_offload", false);
    cJSON_AddBoolToObject(q, "llm_int8_has_fp16_weight", false);
    cJSON_AddNullToObject(q, "llm_int8_skip_modules");
    cJSON_AddNumberToObject(q, "llm_int8_threshold", 6.0);
    cJSON_AddBoolToObject(q, "load_in_4bit", true);
    cJSON_AddBoolToObject(q, "load_in_8bit", false);
    cJSON_AddStringToObject(q, "quant_method", "bitsandbytes");
    return q;
}

static const char *dtype_name(int dtype)
{
    return dtype == PC_DT_BF16 ? "bfloat16" : dtype == PC_DT_F16 ? "float16" : "float32";
}

static int run_merge(pc_config *cfg, const cli_flags *flags, char **args, int n_args)
{
    (void)args; (void)n_args;
    if (!cfg->adapter_name_or_path) { fprintf(stderr, "peftc merge: --adapter_name_or_path is required\n"); return 2; }
    if (!strcmp(cfg->output_dir, cfg->model_name_or_path)) {
        fprintf(stderr, "peftc merge: --output_dir must differ from --model_name_or_path\n");
        return 2;
    }
    loaded l = {0};
    int rc = load_inference(cfg, &l);
    if (rc) return rc;
    pc_error err = {0};
    pc_merge_state st;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", cfg->output_dir);
    int dtype = l.model->checkpoint_dtype;
    pc_status s = pc_mkdirs(cfg->output_dir, &err);
    if (!s) s = pc_peft_merge(l.peft, &st, &err);
    pc_quant_options q = { strcmp(cfg->bnb_4bit_quant_type, "nf4") == 0 ? PC_Q4_NF4 : PC_Q4_FP4,
                           cfg->bnb_4bit_use_double_quant, PC_Q4_COMPUTE_F32, cfg->llm_int8_skip_modules,
                           cfg->n_llm_int8_skip_modules };
    if (!s) {  /* --requantize: the merged model written in 4 bits again (bnb_4bit_* settings) */
        s = flags->requantize ? pc_model_save_weights_4bit(l.model, path, (pc_dtype)dtype, &q, &err)
                              : pc_model_save_weights(l.model, path, (pc_dtype)dtype, &err);
        pc_peft_unmerge(&st);
    }
    if (!s) s = write_config(l.model, cfg->model_name_or_path, cfg->output_dir, dtype_name(dtype),
                             flags->requantize ? quantization_config(cfg) : NULL, &err);
    if (!s) s = copy_tokenizer_files(cfg->model_name_or_path, cfg->output_dir, &err);
    if (s) { cli_print_error(&err); rc = 1; }
    else printf("merged %d adapted Linear%s into %s/ (%s): loads with from_pretrained, no PEFT needed\n",
                l.peft->n_adapters, l.peft->n_adapters == 1 ? "" : "s", cfg->output_dir, dtype_name(dtype));
    unload(&l);
    return rc;
}

int cmd_merge(int argc, char **argv) { return cli_command("merge", argc, argv, false, run_merge); }

static int run_quantize(pc_config *cfg, const cli_flags *flags, char **args, int n_args)
{
    (void)flags; (void)args; (void)n_args;
    if (!strcmp(cfg->output_dir, cfg->model_name_or_path)) {
        fprintf(stderr, "peftc quantize: --output_dir must differ from --model_name_or_path\n");
        return 2;
    }
    cfg->load_in_4bit = true;
    loaded l = {0};
    int rc = load_inference(cfg, &l);
    if (rc) return rc;
    pc_error err = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", cfg->output_dir);
    int dtype = l.model->checkpoint_dtype, n = 0;
    for (int i = 0; i < l.model->n_linears; i++) n += l.model->linears[i]->q4 != NULL;
    pc_quant_options q = { strcmp(cfg->bnb_4bit_quant_type, "nf4") == 0 ? PC_Q4_NF4 : PC_Q4_FP4,
                           cfg->bnb_4bit_use_double_quant, PC_Q4_COMPUTE_F32, cfg->llm_int8_skip_modules,
                           cfg->n_llm_int8_skip_modules };
    pc_status s = pc_mkdirs(cfg->output_dir, &err);
    if (!s) s = pc_model_save_weights_4bit(l.model, path, (pc_dtype)dtype, &q, &err);
    if (!s) s = write_config(l.model, cfg->model_name_or_path, cfg->output_dir, dtype_name(dtype),
                             quantization_config(cfg), &err);
    if (!s) s = copy_tokenizer_files(cfg->model_name_or_path, cfg->output_dir, &err);
    if (s) { cli_print_error(&err); rc = 1; }
    else printf("quantized %d Linear%s to %s%s into %s/\n", n, n == 1 ? "" : "s", cfg->bnb_4bit_quant_type,
                cfg->bnb_4bit_use_double_quant ? " with double quantization" : "", cfg->output_dir);
    unload(&l);
    return rc;
}

int cmd_quantize(int argc, char **argv) { return cli_command("quantize", argc, argv, false, run_quantize); }
