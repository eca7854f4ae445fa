#!/usr/bin/env bash
# What `pip install segcourse` gives a student, as a student gets it: build the sdist and the wheel, check them
# with twine, make a fresh virtual environment with torch already in it (as on Colab), `pip install` the wheel
# there so that pip resolves its dependencies, and from that environment, outside the checkout, import every
# module, run `segcourse demo --quick` and run lesson 1 top to bottom with nbclient.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rm -rf dist
python -m build --outdir "$tmp/dist" . > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
python -m twine check --strict "$tmp"/dist/*
wheel=$(ls "$tmp"/dist/segcourse-*.whl)
unzip -l "$wheel" | grep -q 'segcourse/course/measured/.*\.json' || { echo "the wheel lacks the measured results (segcourse/course/measured/*.json)" >&2; exit 1; }

python -m venv "$tmp/venv"
py="$tmp/venv/bin/python"
"$py" -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then "$py" -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else "$py" -m pip install -q "torch==2.13.0"; fi   # torch first, as Colab has it: the wheel's range must accept it
"$py" -m pip install -q "$wheel"                    # pip resolves the rest from the wheel's requirements
"$py" -m pip install -q nbclient ipykernel          # to run a lesson, as Jupyter or Colab would
"$py" -m pip check

cd "$tmp"
# one thread: it runs beside the tests
export SEGCOURSE_MODE=smoke SEGCOURSE_THREADS=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg
unset PYTHONPATH
"$tmp/venv/bin/segcourse" --version
"$py" -c "import segcourse, os; assert segcourse.__file__.startswith('$tmp/venv'), segcourse.__file__; print('imported from', os.path.dirname(segcourse.__file__))"
"$tmp/venv/bin/segcourse" demo --quick --out "$tmp/demo" --no-progress
test -s "$tmp/demo/report.json"
# every module imports from the wheel (a module or file left out of the package fails here)
"$py" - <<'PY'
import importlib, pkgutil, segcourse
names = [m.name for m in pkgutil.walk_packages(segcourse.__path__, 'segcourse.') if m.name != 'segcourse.__main__']
for name in names: importlib.import_module(name)
from segcourse.course import measured
assert measured('imbalance') is not None, 'the measured results did not come with the wheel'
print(f"all {len(names)} segcourse modules import from the wheel")
PY
# lesson 1, top to bottom, in this environment's kernel
cp "$repo/nbs/lessons/01_demo.ipynb" "$tmp/lesson.ipynb"
"$py" - <<'PY'
import nbformat, sys
from nbclient import NotebookClient
nb = nbformat.read('lesson.ipynb', as_version=4)
NotebookClient(nb, timeout=600, kernel_name='python3').execute()
print(f"lesson 1 ran top to bottom from the installed wheel ({len(nb.cells)} cells)")
PY
