#!/usr/bin/env bash
# The path of a student who only runs `pip install segcourse`: build the sdist and the wheel, check
# them with twine, install the wheel into a fresh virtual environment (torch 2.13.0, a CPU build,
# first, as CI does) and from there run `segcourse demo --quick` and lesson 1 top to bottom with
# nbclient in smoke mode. Nothing from the checkout is importable there: it runs in a temp folder.
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
$pip install -q --upgrade pip
$pip install -q "torch==2.13.0"
$pip install -q "$wheel"
# a student's Jupyter: only what runs a notebook (the lesson itself needs nothing else)
$pip install -q nbclient nbformat ipykernel

cd "$tmp"
# one thread: it runs beside the tests
export SEGCOURSE_MODE=smoke SEGCOURSE_THREADS=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg
"$tmp/venv/bin/segcourse" --version
"$tmp/venv/bin/python" -c "import segcourse, os; assert not segcourse.__file__.startswith('$repo'), segcourse.__file__; print('imported from', os.path.dirname(segcourse.__file__))"
"$tmp/venv/bin/segcourse" demo --quick --out "$tmp/demo" --no-progress
test -s "$tmp/demo/report.json"
cp "$repo/nbs/lessons/01_demo.ipynb" "$tmp/lesson1.ipynb"
"$tmp/venv/bin/python" - "$tmp/lesson1.ipynb" <<'PY'
import sys, time, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
t = time.time()
NotebookClient(nb, timeout=600, kernel_name='python3').execute()
errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
assert not errors, errors
print(f"lesson 1 ran top to bottom from the wheel in {time.time() - t:.0f} s ({len(nb.cells)} cells)")
PY
