"""Measure the real-data studies of the lessons at a laptop budget and store them in segcourse/course/measured/.

    OMP_NUM_THREADS=2 SEGCOURSE_THREADS=2 python benchmarks/course_results.py --data-root PATH [--study NAME ...] [--seeds 0 1]
        [--add-seeds | --replace-seeds REASON]

`--data-root` is a folder that `segcourse.data.find_data` reads (`lgg-dev/kaggle_3m`, `lidc-sample/lidc_subset.npz`,
...); LGG is packed once at 256x256 into a temporary `.npz` (decoding TIFFs every epoch would cost more than the
training). Each study trains every run within its budget (minutes per run, `fit_to_time`) and evaluates `last.pt`
on the held-out patients. The budgets make each lesson's full mode 10 to 30 minutes on two CPU cores.
Run it on an otherwise idle machine: the load is stored with the results.
"""
import argparse, contextlib, io, sys, tempfile, time
from pathlib import Path

from segcourse.config import RunConfig
from segcourse.core import set_threads
from segcourse.data.registry import load_dataset
from segcourse.data.packed import pack_dataset
from segcourse.data.sources import find_data
from segcourse.course.studies import STUDIES, format_study, measured, merge_studies, run_study, save_study

BUDGETS = {'models-lidc': 4.0, 'pos-weight-lidc': 4.0, 'models-lgg': 7.0, 'losses-optimizers-lgg': 3.0,  # minutes per run
           'thresholds-lgg': 10.0, 'ensemble-lidc': 3.0, 'skips-noise-lgg': 8.0}
SOURCES = {'lgg': 'lgg-dev', 'lidc': 'lidc-sample'}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-root', required=True)
    ap.add_argument('--study', nargs='+', default=list(BUDGETS), choices=list(BUDGETS))
    ap.add_argument('--seeds', nargs='+', type=int, default=[0])
    ap.add_argument('--budget', type=float, help='minutes per run for every study (default: each study its own)')
    ap.add_argument('--measured', type=Path, help='folder of the stored studies (default: segcourse/course/measured/)')
    again = ap.add_mutually_exclusive_group()
    again.add_argument('--add-seeds', action='store_true', help="add these seeds to the stored study (its budget, on its split) instead of replacing it")
    again.add_argument('--replace-seeds', metavar='REASON', help="measure these stored seeds again (the study's budget, on its split) and put them in "
                       "place of the stored runs, which stay in the study under 'replaced' with REASON, e.g. 'shared the machine with other work'")
    a = ap.parse_args()
    print(f"torch threads {set_threads()}")
    packed = {}
    for name in a.study:
        kind = STUDIES[name][0]
        with contextlib.redirect_stdout(io.StringIO()): data = find_data(SOURCES[kind], a.data_root, required=True)
        if kind == 'lgg':
            if data not in packed:
                out = Path(tempfile.mkdtemp())/'lgg-256.npz'
                pack_dataset(load_dataset(RunConfig(data=data, size=256)), out, progress=False)
                packed[data] = f'packed:{out}'
            run_data = packed[data]
        else: run_data = data
        flag = '--add-seeds' if a.add_seeds else '--replace-seeds' if a.replace_seeds else None
        start, budget, stored = time.perf_counter(), a.budget or BUDGETS[name], measured(name, a.measured) if flag else None
        if flag and stored is None: sys.exit(f"{flag}: no stored study {name!r} in {a.measured or 'segcourse/course/measured'}")
        split = stored.get('split_seed', stored['seeds'][0]) if stored else a.seeds[0]
        if stored:
            try: merge_studies(stored, dict(name=name, budget=budget, split_seed=split, data=data, seeds=a.seeds, rows=[], per_seed=[]),
                               replace=a.replace_seeds)  # refuse before training
            except ValueError as e: sys.exit(f'{flag}: {e}')
        study = run_study(name, run_data, budget=budget, seeds=tuple(a.seeds), split_seed=split)
        study['data'] = data  # the data set, not the temporary pack
        minutes = (time.perf_counter() - start) / 60
        note = f"{SOURCES[kind]}; {len(a.seeds)} seed(s); {minutes:.0f} minutes in all"
        if a.add_seeds:
            note = f"{SOURCES[kind]}; seeds {a.seeds} added on {time.strftime('%Y-%m-%d')} ({minutes:.0f} minutes) to seeds {stored['seeds']} of {stored['date']} (load {stored['load']})"
        elif a.replace_seeds:
            note = f"{stored['note']}; seeds {a.seeds} measured again on {time.strftime('%Y-%m-%d')} ({minutes:.0f} minutes): {a.replace_seeds}"
        if stored: study = merge_studies(stored, study, replace=a.replace_seeds)
        path = save_study(study, a.measured/f'{name}.json' if a.measured else None, note=note)
        print(format_study(study)); print(f"wrote {path}\n", flush=True)

if __name__ == '__main__':
    main()
