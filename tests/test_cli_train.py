"""`segcourse train`, `evaluate` and `predict` as a user runs them: on phantoms, on the LGG sample, and with the
errors a user meets (missing checkpoint, a checkpoint of another model, data of no known layout)."""
import json, os
from pathlib import Path

import numpy as np
import pytest
from data_paths import needs, sample
import torch
from PIL import Image

ROOT = Path(__file__).parents[1]
LGG_SAMPLE = sample('lgg-sample') or Path('lgg-sample-not-found')
needs_lgg = needs('lgg-sample')

from cli_helpers import run_command, run_in_process as run

def ok(r):
    assert r.returncode == 0, r.stderr[-2000:]
    return r

QUICK = ['--quick', '--no-progress', '--epochs', '2']

@pytest.fixture(scope='module')
def phantom_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('phantom')/'run'
    r = ok(run('train', *QUICK, '--loss', 'dice', '--opt', 'adam', '--out', out))
    return out, r

def test_help_lists_the_options():
    r = ok(run('train', '--help'))
    for opt in ('--data', '--model', '--loss', '--opt', '--epochs', '--out', '--resume', '--schedule', '--batch-size', '--lr',
                '--size', '--features', '--patience', '--channels-last', '--amp', '--lesion-share', '--config'):
        assert opt in r.stdout, opt
    assert '--checkpoint' in ok(run('evaluate', '--help')).stdout
    assert '--input' in ok(run('predict', '--help')).stdout

def test_train_on_phantoms_writes_the_run_folder(phantom_run):
    out, r = phantom_run
    assert 'trained 2 epoch(s) on 1 process(es)' in r.stdout
    assert {'last.pt', 'best.pt', 'history.json', 'history.csv', 'history.png', 'config.json'} <= {p.name for p in out.iterdir()}
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['run']['loss'] == 'dice' and cfg['model']['name'] == 'unet' and cfg['fit']['epochs'] == 2
    hist = json.loads((out/'history.json').read_text())
    assert [h['epoch'] for h in hist] == [1, 2] and 'val_dice_case_median' in hist[0]

def test_resume_continues_the_run(phantom_run, tmp_path):
    out, _ = phantom_run
    import shutil; shutil.copytree(out, tmp_path/'run')
    ok(run('train', *QUICK[:-1], '3', '--loss', 'dice', '--out', tmp_path/'run', '--resume'))
    hist = json.loads((tmp_path/'run'/'history.json').read_text())
    assert [h['epoch'] for h in hist] == [1, 2, 3]
    assert hist[:2] == json.loads((out/'history.json').read_text())

def test_evaluate_prints_table_and_cases(phantom_run, tmp_path):
    out, _ = phantom_run
    r = ok(run('evaluate', '--checkpoint', out/'best.pt', '--out', tmp_path))
    assert 'threshold' in r.stdout and 'Dice per case' in r.stdout
    ev = json.loads((tmp_path/'evaluation.json').read_text())
    assert ev['split'] == 'val' and [row['threshold'] for row in ev['table']] == ['all-background', 0.1, 0.3, 0.5, 0.7, 0.9]
    assert len(ev['per_case']) >= 1 and 0 <= ev['case_dice_mean'] <= 1

def test_predict_writes_masks_and_probabilities(phantom_run, tmp_path):
    out, _ = phantom_run
    from segcourse.data.phantoms import PhantomDataset
    (tmp_path/'in'/'sub').mkdir(parents=True)
    img = PhantomDataset(n=1, seed=7, size=96)[0][0][0].numpy()
    np.save(tmp_path/'in'/'a.npy', img)
    Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(tmp_path/'in'/'sub'/'b.png')
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(tmp_path/'in'/'sub'/'b_mask.png')  # skipped: a mask
    r = ok(run('predict', '--checkpoint', out/'best.pt', '--input', tmp_path/'in', '--out', tmp_path/'pred'))
    assert 'of 2 image(s)' in r.stdout
    prob = np.load(tmp_path/'pred'/'sub'/'b_prob.npy')
    mask = np.array(Image.open(tmp_path/'pred'/'sub'/'b_pred.png'))
    assert prob.shape == mask.shape == (96, 96) and prob.dtype == np.float32 and set(np.unique(mask)) <= {0, 255}
    assert ((prob >= 0.5) == (mask == 255)).all()
    assert (tmp_path/'pred'/'a_pred.png').is_file() and not list((tmp_path/'pred').rglob('*_mask*'))  # never named like ground truth

@pytest.mark.parametrize('args, message', [
    (['evaluate', '--checkpoint', 'nope/best.pt'], 'checkpoint nope/best.pt: no such file'),
    (['predict', '--checkpoint', 'nope.pt', '--input', '.', '--out', 'x'], 'no such file'),
    (['train', '--quick', '--data', 'lgg'], 'needs a path: lgg:PATH'),
    (['train', '--quick', '--data', 'phantoms'], 'neither a known kind'),
    (['train', '--quick', '--opt', 'adma'], "did you mean 'adam'"),
    (['train', '--quick', '--model', 'unett'], "did you mean 'unet'"),
    (['train', '--quick', '--loss', 'dise'], "did you mean 'dice'"),
    (['train', '--quick', '--schedule', 'cosin'], "did you mean 'cosine'"),
    (['train', '--epochs', 'x'], "expected a whole number"),
    (['train', '--quick', '--missing-sequence', '0.3'], 'needs images with several sequences'),
    (['train', '--quick', '--normalize', 'zscor'], "did you mean 'zscore'"),
    (['train', '--quick', '--normalize', 'zscore'], 'applies to file data'),
    (['train', '--quick', '--crop', 'brian'], "did you mean 'brain'"),
    (['train', '--quick', '--crop', 'brain'], 'applies to file data'),
    (['train', '--quick', '--context', '1'], 'context=1 applies to file data'),
    (['train', '--quick', '--context', '-1'], 'context must be a whole number'),
    (['train', '--quick', '--fit-to-time'], 'fit_to_time needs a time_limit'),
    (['train', '--quick', '--fold', '1'], 'fold=1 needs folds'),
    (['train', '--quick', '--folds', '5'], 'folds=5 applies to file data'),
])
def test_bad_input_gets_one_line(args, message, tmp_path):
    r = run(*args, *(['--out', tmp_path/'o'] if args[0] == 'train' else []))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and 'Traceback' not in r.stderr

def test_the_command_itself_exits_2_with_one_line(tmp_path):
    "The other tests call `main` in this process; here the real command, in a new process, as a user types it."
    r = run_command('train', '--quick', '--opt', 'adma', '--out', tmp_path/'o')
    assert r.returncode == 2 and "did you mean 'adam'" in r.stderr and 'Traceback' not in r.stderr
    assert r.stderr.strip().count('\n') == 0, r.stderr

def test_unknown_layout(tmp_path):
    (tmp_path/'stuff').mkdir(); (tmp_path/'stuff'/'notes.txt').write_text('hi')
    for spec in (tmp_path/'stuff', f'folder:{tmp_path/"stuff"}'):
        r = run('train', '--quick', '--data', spec, '--out', tmp_path/'o')
        assert r.returncode == 2 and 'is not a known layout' in r.stderr and 'Traceback' not in r.stderr

def test_checkpoint_of_another_model(phantom_run, tmp_path):
    out, _ = phantom_run
    r = run('evaluate', '--checkpoint', out/'best.pt', '--model', 'segnet')
    assert r.returncode == 2 and "holds a 'unet' model" in r.stderr
    ck = torch.load(out/'best.pt', weights_only=True)  # weights that do not fit the model the checkpoint names
    ck['model_spec']['kwargs']['features'] = [8, 16]
    torch.save(ck, tmp_path/'bad.pt')
    r = run('evaluate', '--checkpoint', tmp_path/'bad.pt')
    assert r.returncode == 2 and 'weights of a UNet' in r.stderr and 'Traceback' not in r.stderr
    (tmp_path/'junk.pt').write_bytes(b'not a checkpoint')
    r = run('predict', '--checkpoint', tmp_path/'junk.pt', '--input', tmp_path, '--out', tmp_path/'p')
    assert r.returncode == 2 and 'could not be read safely' in r.stderr

def test_folder_layout_trains(tmp_path):
    from segcourse.data.phantoms import PhantomDataset
    ds = PhantomDataset(n=12, seed=0, size=64, slices_per_case=4)
    for d in ('images', 'masks'): (tmp_path/'data'/d).mkdir(parents=True)
    for i in range(len(ds)):
        x, y = ds[i]
        Image.fromarray((x[0].numpy().clip(0, 1) * 255).astype(np.uint8)).save(tmp_path/'data'/'images'/f'p{i:02d}.png')
        Image.fromarray((y[0].numpy() * 255).astype(np.uint8)).save(tmp_path/'data'/'masks'/f'p{i:02d}.png')
    ok(run('train', '--quick', '--no-progress', '--augment', '--data', f'folder:{tmp_path/"data"}', '--val-fraction', '0.25', '--out', tmp_path/'run'))
    r = ok(run('evaluate', '--checkpoint', tmp_path/'run'/'last.pt', '--data', f'folder:{tmp_path/"data"}'))
    assert '(val, 3 slices)' in r.stdout  # the run's own data: its validation cases

@needs_lgg
def test_lgg_sample_train_evaluate_predict(tmp_path):
    r = ok(run('train', '--quick', '--no-progress', '--data', f'lgg:{LGG_SAMPLE}', '--val-fraction', '0.34', '--size', '64',
               '--epochs', '2', '--loss', 'dice_bce', '--augment', '--missing-sequence', '0.5', '--normalize', 'zscore',
               '--out', tmp_path/'run'))
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['model']['kwargs']['in_channels'] == 3 and cfg['run']['missing_sequence'] == 0.5 and cfg['run']['augment']
    assert cfg['run']['normalize'] == 'zscore'
    r = ok(run('evaluate', '--checkpoint', tmp_path/'run'/'best.pt', '--out', tmp_path))
    ev = json.loads((tmp_path/'evaluation.json').read_text())
    assert ev['split'] == 'val' and len(ev['per_case']) == 1 and ev['per_case'][0]['case'].startswith('TCGA_')
    r = ok(run('evaluate', '--checkpoint', tmp_path/'run'/'best.pt', '--data', f'lgg:{LGG_SAMPLE}', '--split', 'all'))
    assert '(all, 66 slices)' in r.stdout and r.stdout.count('TCGA_') == 3
    case = sorted(LGG_SAMPLE.iterdir())[0]
    r = ok(run('predict', '--checkpoint', tmp_path/'run'/'best.pt', '--input', case, '--out', tmp_path/'pred'))
    n = len([p for p in case.iterdir() if p.suffix == '.tif' and not p.stem.endswith('_mask')])
    masks = sorted((tmp_path/'pred').glob('*_pred.tif'))
    assert len(masks) == n and len(list((tmp_path/'pred').glob('*_prob.npy'))) == n
    assert np.array(Image.open(masks[0])).shape == (256, 256)

@needs_lgg
def test_lgg_sample_brain_crop_evaluates_and_predicts_on_the_full_grid(tmp_path):
    ok(run('train', '--quick', '--no-progress', '--data', f'lgg:{LGG_SAMPLE}', '--val-fraction', '0.34', '--size', '64',
           '--crop', 'brain', '--out', tmp_path/'run'))
    assert json.loads((tmp_path/'run'/'config.json').read_text())['run']['crop'] == 'brain'
    r = ok(run('evaluate', '--checkpoint', tmp_path/'run'/'last.pt', '--tta', '--out', tmp_path))
    ev = json.loads((tmp_path/'evaluation.json').read_text())
    assert 'mirrored TTA' in r.stdout and ev['tta'] and len(ev['per_case']) == 1
    case = sorted(LGG_SAMPLE.iterdir())[0]
    ok(run('predict', '--checkpoint', tmp_path/'run'/'last.pt', '--input', case, '--out', tmp_path/'pred', '--tta'))
    probs = np.stack([np.load(p) for p in sorted((tmp_path/'pred').glob('*_prob.npy'))])
    assert probs.shape[1:] == (256, 256) and np.isfinite(probs).all()
    assert (probs[:, :2, :] == 0).all()  # outside the brain box (brains span at most ~240 of 256 rows) nothing is predicted

@needs_lgg
def test_lgg_checkpoint_on_phantoms_is_a_channel_error(tmp_path, phantom_run):
    out, _ = phantom_run
    r = run('evaluate', '--checkpoint', out/'best.pt', '--data', f'lgg:{LGG_SAMPLE}')
    assert r.returncode == 2 and 'takes 1 input channel(s) but data' in r.stderr and 'has 3' in r.stderr

@needs_lgg
def test_lgg_sample_neighbouring_slices(tmp_path):
    "2.5D: `--context 1` stacks each slice with the slices above and below (9 channels); evaluate and predict stack them too."
    ok(run('train', '--quick', '--no-progress', '--data', f'lgg:{LGG_SAMPLE}', '--val-fraction', '0.34', '--size', '64',
           '--crop', 'brain', '--context', '1', '--missing-sequence', '0.3', '--out', tmp_path/'run'))
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['model']['kwargs']['in_channels'] == 9 and cfg['run']['context'] == 1
    r = ok(run('evaluate', '--checkpoint', tmp_path/'run'/'last.pt', '--largest', '--out', tmp_path))
    ev = json.loads((tmp_path/'evaluation.json').read_text())
    assert len(ev['per_case']) == 1 and 'dice_largest' in ev['per_case'][0] and 'largest component of each case' in r.stdout
    case = sorted(LGG_SAMPLE.iterdir())[0]
    ok(run('predict', '--checkpoint', tmp_path/'run'/'last.pt', '--input', case, '--out', tmp_path/'pred'))
    n = len([p for p in case.iterdir() if p.suffix == '.tif' and not p.stem.endswith('_mask')])
    assert len(list((tmp_path/'pred').glob('*_prob.npy'))) == n
    ok(run('predict', '--checkpoint', tmp_path/'run'/'last.pt', '--input', case, '--out', tmp_path/'kept', '--largest'))
    for m in (tmp_path/'pred').glob('*_pred.tif'):  # the largest component is a part of the plain mask
        assert not (np.array(Image.open(tmp_path/'kept'/m.name)) > np.array(Image.open(m))).any()
    r = run('predict', '--checkpoint', tmp_path/'run'/'last.pt', '--input', next(case.glob('*_1.tif')), '--out', tmp_path/'one')
    assert r.returncode == 0  # a single slice is its own neighbour

def test_fit_to_time_plans_the_epochs(tmp_path):
    ok(run('train', *QUICK, '--epochs', '3', '--time-limit', '60', '--fit-to-time', '--out', tmp_path/'run'))
    ck = torch.load(tmp_path/'run'/'last.pt', weights_only=True)
    assert ck['planned_epochs'] == 3 and ck['epoch'] == 3 and ck['config']['fit_to_time']

@pytest.mark.parametrize('flags, recorded', [(['--augment'], True), (['--augment', 'strong'], 'strong'), ([], False)])
def test_augment_preset_is_recorded(flags, recorded, tmp_path):
    ok(run('train', *QUICK, '--epochs', '1', *flags, '--out', tmp_path/'run'))
    assert json.loads((tmp_path/'run'/'config.json').read_text())['run']['augment'] == recorded

@needs_lgg
def test_lgg_sample_cross_validation_fold(tmp_path):
    "`--folds 3 --fold 2`: the patients are dealt into three folds and the third is validated; the folds cover every patient once."
    from segcourse.config import RunConfig
    from segcourse.data.registry import load_splits
    ok(run('train', '--quick', '--no-progress', '--data', f'lgg:{LGG_SAMPLE}', '--folds', '3', '--fold', '2', '--size', '64',
           '--out', tmp_path/'run'))
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())['run']
    assert (cfg['folds'], cfg['fold']) == (3, 2)
    ok(run('evaluate', '--checkpoint', tmp_path/'run'/'last.pt', '--out', tmp_path))
    held = [sorted(set(load_splits(RunConfig.quick(data=f'lgg:{LGG_SAMPLE}', size=64, folds=3, fold=k))['val'].case_ids)) for k in range(3)]
    assert [row['case'] for row in json.loads((tmp_path/'evaluation.json').read_text())['per_case']] == held[2]
    assert sorted(sum(held, [])) == sorted(p.name for p in LGG_SAMPLE.iterdir() if p.is_dir())
    r = ok(run('evaluate', '--cross-validation', '--checkpoint', tmp_path/'run'/'last.pt', '--out', tmp_path/'cv'))
    assert '1 of 3 folds' in r.stdout and 'folds [0, 1] are missing' in r.stdout
    assert json.loads((tmp_path/'cv'/'evaluation.json').read_text())['missing'] == [0, 1]
    r = run('evaluate', '--cross-validation', '--checkpoint', tmp_path/'run'/'last.pt', '--data', f'lgg:{LGG_SAMPLE}')
    assert r.returncode == 2 and 'leave out --data and --split' in r.stderr
