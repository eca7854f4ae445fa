#!/usr/bin/env bash
# The path of a student who only runs `pip install segcourse`: build the sdist and the wheel, check
# them with twine, install the wheel into a fresh virtual environment (torch 2.13.0, a CPU build,
# first, as CI does), import every module from there and run `segcourse demo --quick` (a training run,
# figures and a report). Nothing from the checkout is importable there: it runs in a temp folder. The
# lessons themselves run under pytest (nbval), from the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rm -rf dist
python -m build --outdir "$tmp/dist" . > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
python -m twine check --strict "$tmp"/dist/*
wheel=$(ls "$tmp"/dist/segcourse-*.whl)

python -m venv "$tmp/venv"
pip="$tmp/venv/bin/python -m pip"
$pip install -q "torch==2.13.0"
$pip install -q "$wheel"

cd "$tmp"
# one thread: it runs beside the tests
export SEGCOURSE_MODE=smoke SEGCOURSE_THREADS=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg
"$tmp/venv/bin/segcourse" --version
"$tmp/venv/bin/python" -c "import segcourse, os; assert not segcourse.__file__.startswith('$repo'), segcourse.__file__; print('imported from', os.path.dirname(segcourse.__file__))"
"$tmp/venv/bin/segcourse" demo --quick --out "$tmp/demo" --no-progress
test -s "$tmp/demo/report.json"
# every module imports from the wheel (a module or file left out of the package fails here)
"$tmp/venv/bin/python" - <<'PY'
import importlib, pkgutil, segcourse
names = [m.name for m in pkgutil.iter_modules(segcourse.__path__, 'segcourse.') if m.name != 'segcourse.__main__']
for name in names: importlib.import_module(name)
print(f"all {len(names)} segcourse modules import from the wheel")
PY
