"""The `segcourse` command as a user meets it: help, a quick demo, and clear errors without tracebacks."""
import json

import pytest

from cli_helpers import run_command, run_in_process as run

def test_help_explains_every_option():
    r = run('demo', '--help')
    assert r.returncode == 0
    for opt in ('--out', '--quick', '--epochs', '--n-train', '--n-test', '--size', '--batch-size', '--lr',
                '--features', '--loss', '--seed', '--device', '--no-progress'):
        assert opt in r.stdout, opt
    top = run('--help')
    assert top.returncode == 0 and 'demo' in top.stdout

def test_version():
    import segcourse
    r = run_command('--version')  # the real command, as a user types it
    assert r.returncode == 0 and r.stdout.strip() == f'segcourse {segcourse.__version__}'

@pytest.mark.parametrize('args, message', [
    (['demo', '--epochs', 'two'], "expected a whole number, got 'two'"),
    (['demo', '--size', '0'], 'must be at least 1'),
    (['demo', '--features', '16'], 'need at least 2 positive widths'),
    (['demo', '--device', 'tpu'], "invalid choice: 'tpu'"),
    (['demo', '--quick', '--loss', 'dise'], "loss='dise' is not valid"),
    (['demo', '--quick', '--size', '16'], 'size must be at least 32'),
    (['trian'], "invalid choice: 'trian'"),
])
def test_bad_input_gets_one_clear_line(args, message, tmp_path):
    r = run(*args, '--out', str(tmp_path)) if args[0] == 'demo' and '--quick' in args else run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert 'Traceback' not in r.stderr

def test_quick_demo_writes_report_and_figures(tmp_path):
    r = run('demo', '--quick', '--no-progress', '--out', str(tmp_path/'out'))
    assert r.returncode == 0, r.stderr
    assert 'all-background baseline' in r.stdout
    rep = json.loads((tmp_path/'out'/'report.json').read_text())
    assert [row['threshold'] for row in rep['table']] == ['all-background', 0.1, 0.3, 0.5, 0.7, 0.9]
    assert {'accuracy', 'sensitivity', 'specificity', 'iou', 'dice'} <= set(rep['table'][0])
    assert (tmp_path/'out'/'training_curve.png').stat().st_size > 1000
    assert (tmp_path/'out'/'predictions.png').stat().st_size > 1000
