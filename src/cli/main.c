/* peftc — parameter-efficient fine-tuning from one binary. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define PEFTC_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
        "peftc %s — parameter-efficient fine-tuning (LoRA) of Hugging Face models, in C\n\n"
        "usage:\n"
        "  peftc train [CONFIG.json] [--key value ...]   fine-tune; keys are LoraConfig / TrainingArguments names\n"
        "  peftc eval --model_name_or_path DIR [--adapter_name_or_path OUT] --validation_file FILE\n"
        "  peftc predict --model_name_or_path DIR [--adapter_name_or_path OUT] [--json] TEXT...\n"
        "  peftc generate --model_name_or_path DIR [--adapter_name_or_path OUT] [--prompt TEXT] [--max_new_tokens N]\n"
        "                 [--temperature T --top_k K --top_p P --seed S]   greedy unless sampling is asked for\n"
        "  peftc tokenize --model_name_or_path DIR [--json] [--max_length N] TEXT...   (--decode ID... for text)\n"
        "  peftc merge --model_name_or_path DIR --adapter_name_or_path OUT --output_dir MERGED   merge_and_unload\n"
        "              [--load_in_4bit true (the QLoRA base)] [--requantize (write 4-bit again)]\n"
        "  peftc quantize --model_name_or_path DIR --output_dir DIR4 [--bnb_4bit_quant_type nf4] [--bnb_4bit_use_double_quant true]\n"
        "  peftc inspect FILE.safetensors\n"
        "  peftc demo [--output_dir DIR]              the whole recipe on a built-in model and dataset\n\n"
        "See README.md for every key and its default.\n", PEFTC_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("peftc %s\n", PEFTC_VERSION); return 0; }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "merge")) return cmd_merge(argc - 2, argv + 2);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 2, argv + 2);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc - 2, argv + 2);
    fprintf(stderr, "peftc: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
