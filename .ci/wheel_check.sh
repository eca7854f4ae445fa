#!/usr/bin/env bash
# What `pip install segcourse` gives a student: build the sdist and the wheel, check them with twine,
# install the wheel into a folder of its own, check that its requirements are met, and from there (not
# from the checkout) import every module and run `segcourse demo --quick` (a training run, figures and
# a report). The lessons themselves run under pytest (nbval), from the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rm -rf dist
python -m build --outdir "$tmp/dist" . > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
python -m twine check --strict "$tmp"/dist/*
wheel=$(ls "$tmp"/dist/segcourse-*.whl)

# The wheel goes into a folder of its own (no dependencies), ahead of this environment's packages on
# PYTHONPATH, so that `import segcourse` finds the wheel and not the checkout's editable install; its
# dependencies are this environment's, in which the tests run. Installing torch a second time into a
# fresh venv took a minute of the CI's 15.
python -m pip install -q --no-deps --target "$tmp/site" "$wheel"
export PYTHONPATH="$tmp/site"
python - "$wheel" <<'PY'
import sys, zipfile
from importlib.metadata import version
from packaging.requirements import Requirement
meta = next(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith('.dist-info/METADATA'))
reqs = [Requirement(l.split(':', 1)[1].strip()) for l in zipfile.ZipFile(sys.argv[1]).read(meta).decode().splitlines() if l.startswith('Requires-Dist:')]
core = [r for r in reqs if r.marker is None or r.marker.evaluate({'extra': ''})]
bad = [f"{r} (installed {version(r.name)})" for r in core if not r.specifier.contains(version(r.name), prereleases=True)]
assert not bad, f"the wheel requires what the tests did not run with: {bad}"
print(f"the wheel's {len(core)} requirements are met by the environment the tests ran in")
PY

cd "$tmp"
# one thread: it runs beside the tests
export SEGCOURSE_MODE=smoke SEGCOURSE_THREADS=1 OMP_NUM_THREADS=1 TQDM_DISABLE=1 MPLBACKEND=Agg
"$tmp/site/bin/segcourse" --version
python -c "import segcourse, os; assert segcourse.__file__.startswith('$tmp/site'), segcourse.__file__; print('imported from', os.path.dirname(segcourse.__file__))"
"$tmp/site/bin/segcourse" demo --quick --out "$tmp/demo" --no-progress
test -s "$tmp/demo/report.json"
# every module imports from the wheel (a module or file left out of the package fails here)
python - <<'PY'
import importlib, pkgutil, segcourse
names = [m.name for m in pkgutil.iter_modules(segcourse.__path__, 'segcourse.') if m.name != 'segcourse.__main__']
for name in names: importlib.import_module(name)
print(f"all {len(names)} segcourse modules import from the wheel")
PY
