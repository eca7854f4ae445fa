#!/usr/bin/env bash
# The GPU check of issue 26 (see benchmarks/gpu_check.py): `bash benchmarks/gpu_check.sh --data packed:lgg-dev-256.npz`
# on a GPU machine, at most 8 minutes; `--shrink` runs every part at toy size on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu_check.py "$@"
