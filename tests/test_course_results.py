"""benchmarks/course_results.py, which measures the lessons' real-data studies: seeds added to a stored study, seeds
measured again in place of runs that shared the machine, and the refusals that come before any training."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

from data_paths import needs

ROOT = Path(__file__).resolve().parents[1]

def course_results(measured:Path, *args) -> subprocess.CompletedProcess:
    "Run the script on the LIDC sample (two runs of 0.02 minutes per seed), storing studies in `measured`."
    env = dict(os.environ, OMP_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1', MPLBACKEND='Agg')
    cmd = [sys.executable, str(ROOT/'benchmarks'/'course_results.py'), '--data-root', os.environ['SEGCOURSE_DATA'], '--study', 'models-lidc',
           '--budget', '0.02', '--measured', str(measured), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)

@needs('lidc-sample')
def test_seeds_are_added_then_one_is_measured_again_in_its_place(tmp_path):
    assert course_results(tmp_path, '--seeds', '0').returncode == 0
    r = course_results(tmp_path, '--seeds', '1', '--add-seeds')
    assert r.returncode == 0, r.stderr[-2000:]
    study = json.loads((tmp_path/'models-lidc.json').read_text())
    assert study['seeds'] == [0, 1] and sorted({(p['run'], p['seed']) for p in study['per_seed']}) == [('SegNet', 0), ('SegNet', 1), ('U-Net', 0), ('U-Net', 1)]
    old = [p for p in study['per_seed'] if p['seed'] == 1]
    r = course_results(tmp_path, '--seeds', '1', '--replace-seeds', 'shared the machine')
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads((tmp_path/'models-lidc.json').read_text())
    assert again['seeds'] == [0, 1] and [(p['run'], p['seed']) for p in again['per_seed']] == [(p['run'], p['seed']) for p in study['per_seed']]
    assert [{k: v for k, v in p.items() if k != 'reason'} for p in again['replaced']] == old
    assert {p['reason'] for p in again['replaced']} == {'shared the machine'}
    assert again['note'].startswith(study['note']) and 'seeds [1] measured again' in again['note']

@needs('lidc-sample')
@pytest.mark.parametrize('args, message', [(('--seeds', '1', '--add-seeds'), 'no stored study'),
                                           (('--seeds', '0', '--add-seeds', '--budget', '0.03'), 'budget'),
                                           (('--seeds', '0', '--add-seeds'), 'seeds [0] are in both'),
                                           (('--seeds', '5', '--replace-seeds', 'x'), 'seeds [5] are not stored')])
def test_refused_before_training(tmp_path, args, message):
    if message != 'no stored study':
        (tmp_path/'models-lidc.json').write_text(json.dumps(dict(name='models-lidc', budget=0.02, seeds=[0], split_seed=0, data='lidc:lidc-sample',
                                                                   rows=[], per_seed=[], date='2026-12-05', load=1.0, note='')))
    r = course_results(tmp_path, *args)
    assert r.returncode != 0 and message in r.stderr and 'epoch' not in r.stdout + r.stderr
