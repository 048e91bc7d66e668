/* peftc — parameter-efficient fine-tuning from one binary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "kernels/gemm.h"
#include "kernels/pgemm.h"

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

/* OpenBLAS picks its kernels once, when it loads, from OPENBLAS_CORETYPE or its own CPU table (which may not
 * know a new CPU, or an environment may pin an older core type). On a CPU with AVX-512, its SkylakeX kernels
 * run fp32 products at ~85 % of the FMA peak against ~47 % for Haswell's (make bench): the attention and
 * head products, and the frozen weights of models too large for our fp32 packing (pc_model_choose_packing),
 * which then keep their single copy. So the program restarts itself once with that core type,
 * unless PEFTC_OPENBLAS_CORETYPE=keep. Nothing has been read or written yet; if exec fails, it carries on. */
static void prefer_avx512_openblas(char **argv)
{
    const char *keep = getenv("PEFTC_OPENBLAS_CORETYPE");
    if ((keep && strcmp(keep, "keep") == 0) || getenv("PEFTC_OPENBLAS_RESTARTED")) return;
    if (pc_isa_detected() != PC_ISA_AVX512 || pc_gemm_openblas_avx512()) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq"))
        return;   /* SkylakeX's kernels use all three */
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("PEFTC_OPENBLAS_RESTARTED", "1", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    prefer_avx512_openblas(argv);
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
