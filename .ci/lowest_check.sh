#!/usr/bin/env bash
# The lowest versions the requirement ranges admit (.ci/lowest-py311.txt), installed into a fresh venv by pip's
# own resolver with those pins as constraints; there, every module imports, `segcourse demo --quick` runs, and
# the fast tests that need only the runtime dependencies pass (metrics, losses, models, the trainer, checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m venv "$tmp/venv"
. "$tmp/venv/bin/activate"
python -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then  # a CPU index: torch's own floor
  torch_floor=$(sed -n 's/^requirements = .*torch>=\([0-9.]*\).*/\1/p' settings.ini)
  python -m pip install -q "torch==${torch_floor}.*" --index-url "$TORCH_INDEX_URL"
else python -m pip install -q "torch==2.13.0"; fi  # the only CPU build at hand: torch stays at 2.13.0 here
python -m pip install -q -c .ci/lowest-py311.txt -e . "pytest>=7"
python -m pip check
python .ci/lowest_versions.py  # each installed version is its pin
export SEGCOURSE_MODE=smoke SEGCOURSE_THREADS=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg
python - <<'PY'
import importlib, pkgutil, segcourse
names = [m.name for m in pkgutil.walk_packages(segcourse.__path__, 'segcourse.') if m.name != 'segcourse.__main__']
for name in names: importlib.import_module(name)
print(f"all {len(names)} modules import at the lowest versions")
PY
segcourse demo --quick --out "$tmp/demo" --no-progress > "$tmp/demo.log" || { cat "$tmp/demo.log"; exit 1; }
test -s "$tmp/demo/report.json"
# without nbval and xdist: the plain pytest of the venv, the repository's conftest
python -m pytest -q -o addopts="-p no:cacheprovider" tests/test_metrics.py tests/test_metrics_accumulate.py tests/test_losses.py \
  tests/test_models.py tests/test_train_checkpoint.py tests/test_thresholds.py tests/test_data_splits.py 2>&1 | tail -n 3
