"""Run every lesson top to bottom in full mode on the real samples, with the smallest budget; fail if one breaks.

The data root is a temporary folder that holds only the samples (`lgg-sample`, `lidc-sample`) of the shared data
folder (SEGCOURSE_SHARED_DATA, else `shared/data` beside the repository); where there is none, this step says so and
is skipped. Each lesson runs with SEGCOURSE_MODE=full and SEGCOURSE_BUDGET (minutes of training per run, default
0.05), in a temporary working folder, two lessons at a time; outputs are not compared. Every real-data table a
lesson produces is recorded (SEGCOURSE_RESULTS) and must be there with finite numbers.
"""
import json, math, os, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {'02_data': {'imbalance'}, '04_models': {'models-lidc', 'models-lgg'}, '05_losses': {'pos-weight-lidc'},
            '06_training': {'losses-optimizers-lgg'}, '07_thresholds': {'thresholds-lgg'}, '08_uncertainty': {'ensemble-lidc'},
            '10_robustness': {'skips-noise-lgg'}, '11_capstone': {'capstone'}}

def run(nb:Path, env:dict) -> tuple:
    "Execute one notebook with nbclient in a temporary folder; `(name, seconds, error or None)`."
    import nbformat
    from nbclient import NotebookClient
    start, work = time.perf_counter(), tempfile.mkdtemp(prefix=f'full-{nb.stem}-')
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        book = nbformat.read(nb, as_version=4)
        for c in book.cells:  # cells marked eval: false are not run, as under the tests
            if c.cell_type == 'code' and any(l.replace(' ', '') == '#|eval:false' for l in c.source.splitlines()): c.source = ''
        NotebookClient(book, timeout=900, kernel_name='python3', resources={'metadata': {'path': work}}).execute()
        return nb.stem, time.perf_counter() - start, None
    except Exception as e:
        return nb.stem, time.perf_counter() - start, f"{type(e).__name__}: {str(e)[-1500:]}"

def main() -> int:
    shared = Path(os.environ.get('SEGCOURSE_SHARED_DATA') or ROOT.parent/'shared'/'data')
    samples = [shared/'lgg-sample', shared/'lidc-sample']
    if not all(p.is_dir() for p in samples):
        print(f"full mode: the shared samples are absent ({', '.join(str(p) for p in samples if not p.is_dir())}): "
              "the full-mode run of the lessons is skipped, not passed")
        return 0
    root = Path(tempfile.mkdtemp(prefix='segcourse-data-'))
    for p in samples: (root/p.name).symlink_to(p.resolve())
    results = Path(tempfile.mkdtemp())/'results.jsonl'
    env = dict(SEGCOURSE_MODE='full', SEGCOURSE_BUDGET=os.environ.get('SEGCOURSE_BUDGET', '0.05'), SEGCOURSE_DATA=str(root),
               SEGCOURSE_RESULTS=str(results), SEGCOURSE_TESTING='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               SEGCOURSE_THREADS='1', TQDM_DISABLE='1', MPLBACKEND='Agg')
    lessons = sorted((ROOT/'nbs'/'lessons').glob('[0-9]*.ipynb'))
    print(f"full mode: {len(lessons)} lessons, data root {root} ({', '.join(p.name for p in samples)}), budget {env['SEGCOURSE_BUDGET']} min per run")
    failed = []
    with ThreadPoolExecutor(2) as pool:
        for name, seconds, error in pool.map(lambda nb: run(nb, env), lessons):
            print(f"  {name:<28} {seconds:6.0f} s  {'ok' if error is None else 'FAILED'}", flush=True)
            if error: failed.append(f"{name}: {error}")
    tables = {}
    for line in results.read_text().splitlines() if results.exists() else []:
        t = json.loads(line); tables.setdefault(t['name'], []).append(t['rows'])
    for lesson, names in EXPECTED.items():
        for name in names:
            if name not in tables: failed.append(f"{lesson}: produced no {name!r} table in full mode")
            elif not all(isinstance(v, (int, float)) and math.isfinite(v) for rows in tables[name] for r in rows for v in r.values() if not isinstance(v, (str, bool))):
                failed.append(f"{lesson}: the {name!r} table has a number that is not finite: {tables[name]}")
    print(f"full mode: result tables produced: {sorted(tables)}")
    for f in failed: print(f"FAILED {f}", file=sys.stderr)
    return 1 if failed else 0

if __name__ == '__main__':
    sys.exit(main())
