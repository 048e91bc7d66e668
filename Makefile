# peftc — build, test, demo, bench.  See README.md.
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -fPIC -fopenmp -Iinclude -Isrc \
           $(shell pkg-config --cflags libcjson libutf8proc libpcre2-8 openblas 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs libcjson libutf8proc libpcre2-8 openblas 2>/dev/null || echo -lcjson -lutf8proc -lpcre2-8 -lopenblas) -lm -fopenmp
BUILD   ?= build

LIB_SRC  := $(sort $(wildcard src/base/*.c src/formats/*.c src/text/*.c src/kernels/*.c \
                              src/nn/*.c src/peft/*.c src/models/*.c src/train/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all lib test check demo bench setup clean
all: $(BUILD)/peftc $(BUILD)/libpeftc.a $(BUILD)/libpeftc.so $(BUILD)/run_tests

lib: $(BUILD)/libpeftc.a $(BUILD)/libpeftc.so

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpeftc.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/libpeftc.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/peftc: $(CLI_OBJ) $(BUILD)/libpeftc.a
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(filter-out $(BUILD)/src/cli/main.o,$(CLI_OBJ)) $(BUILD)/libpeftc.a
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Install the Debian packages the build needs (no-op when present).
setup:
	@bash scripts/setup.sh

# The whole suite; tests/run.sh prints "N passed, N failed".
test: setup all
	@PEFTC_BIN=$(BUILD)/peftc $(BUILD)/run_tests

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check: setup
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	        LDFLAGS="-fsanitize=address,undefined" all
	PEFTC_BIN=build-asan/peftc OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 build-asan/run_tests

demo: setup all
	@bash scripts/demo.sh

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libpeftc.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libpeftc.a $(LDFLAGS) $(LDLIBS)

bench: setup all $(BENCH_BIN)
	@BUILD=$(BUILD) bash bench/run.sh

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
