#!/usr/bin/env bash
# make demo: the LoRA recipe end to end on a built-in model and dataset (no download).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rm -rf demo-out
exec "$BUILD/peftc" demo --output_dir demo-out
