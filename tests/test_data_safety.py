"""Nothing lost, nothing silently wrong: the cases of issue 27 reproduced on copies of data, each a failure before
the change and a clear refusal (or a correct answer) after it. Data-loss cases check the files' contents."""
import hashlib, json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import run_command, run_in_process as run
from data_paths import needs, sample
from segcourse.checkpoint import load_checkpoint
from segcourse.evaluation import evaluate_checkpoint
from segcourse.data import PhantomDataset, write_lgg_case

torch.set_num_threads(1)
QUICK = ['--quick', '--no-progress', '--epochs', '2']

def digest(folder:Path) -> dict:
    "Name -> SHA-1 of every file under `folder`: what a command must leave as it was."
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}

def lgg_copy(tmp_path:Path, cases:int=3, slices:int=4, size:int=32) -> Path:
    "A small LGG-layout folder of phantom heads, so that the test needs no real data."
    root, ph = tmp_path/'kaggle_3m', PhantomDataset(n=cases * slices, seed=0, size=size, channels=3, slices_per_case=slices)
    for c in range(cases):
        x = [ph[c * slices + k] for k in range(slices)]
        write_lgg_case(root, f'TCGA_XX_000{c}_20000101', np.stack([(a.permute(1, 2, 0).clamp(0, 1) * 255).byte().numpy() for a, _ in x]),
                       np.stack([m[0].byte().numpy() for _, m in x]))
    return root

@pytest.fixture(scope='module')
def phantom_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('safety')/'run'
    r = run('train', *QUICK, '--out', out)
    assert r.returncode == 0, r.stderr
    return out

# 1. predict never overwrites its input, and its outputs are never named like ground truth
def test_predict_into_its_own_input_folder_is_refused_and_the_masks_survive(phantom_run, tmp_path):
    data = lgg_copy(tmp_path)
    before = digest(data)
    r = run('predict', '--checkpoint', phantom_run/'last.pt', '--input', data, '--out', data)
    assert r.returncode == 2 and 'is inside the input' in r.stderr and 'Traceback' not in r.stderr
    assert digest(data) == before
    r = run('predict', '--checkpoint', phantom_run/'last.pt', '--input', data/'TCGA_XX_0000_20000101', '--out', data)
    assert r.returncode == 2 and 'holds the input' in r.stderr and digest(data) == before

# 2. a run owns its folder
def test_a_second_run_into_a_busy_folder_fails_at_once(tmp_path):
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (tmp_path/'run').mkdir(); (tmp_path/'run'/'.lock').write_text(str(sleeper.pid))
        r = run('train', *QUICK, '--out', tmp_path/'run')
        assert r.returncode == 1 and f'in use by process {sleeper.pid}' in r.stderr and not (tmp_path/'run'/'last.pt').exists()
    finally: sleeper.kill(); sleeper.wait()
    r = run('train', *QUICK, '--out', tmp_path/'run')  # the process is gone: its lock is stale
    assert r.returncode == 0 and (tmp_path/'run'/'last.pt').exists() and not (tmp_path/'run'/'.lock').exists()

# 3. crash-safe to the last file
def test_resume_restores_a_best_pt_lost_to_a_kill(phantom_run, tmp_path):
    shutil.copytree(phantom_run, tmp_path/'run')
    last = load_checkpoint(tmp_path/'run'/'last.pt')
    (tmp_path/'run'/'best.pt').unlink()
    (tmp_path/'run'/'.best.pt.x1y2.tmp').write_bytes(b'half a file')  # left by the killed write
    if last['best_epoch'] == last['epoch']:  # the best epoch was the last: its weights are in last.pt
        r = run('train', *QUICK[:-1], '3', '--out', tmp_path/'run', '--resume')
        assert load_checkpoint(tmp_path/'run'/'best.pt')['epoch'] in (last['epoch'], 3)
    else:  # gone for good: said so, and the next better epoch writes a new one
        with pytest.warns(UserWarning, match='cannot be restored'):
            r = run('train', *QUICK[:-1], '3', '--out', tmp_path/'run', '--resume')
    assert r.returncode == 0, r.stderr
    assert not list((tmp_path/'run').glob('.*.tmp'))

KILLED_RUN = ['--quick', '--no-progress', '--epochs', '10', '--n-train', '256']  # epochs of about 0.5 s: kills land in training too

def _train_process(out:Path, *extra) -> subprocess.Popen:
    "`segcourse train` of a short run into `out`, as a user starts it: a process of its own, one thread."
    env = dict(os.environ, OMP_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1')
    return subprocess.Popen([sys.executable, '-m', 'segcourse', 'train', *KILLED_RUN, '--out', str(out), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

def _history(out:Path) -> list: return [{k: v for k, v in h.items() if k != 'seconds'} for h in json.loads((out/'history.json').read_text())]

def test_kill_anywhere_then_resume_equals_an_uninterrupted_run(tmp_path):
    "SIGKILL at random instants (starting up, training, validating, writing; 12 kills), `--resume` after each (`--overwrite` where no checkpoint was written yet)."
    start = time.perf_counter()
    whole = _train_process(tmp_path/'whole')
    assert whole.wait(timeout=600) == 0, whole.stderr.read()
    epochs = [h['seconds'] for h in json.loads((tmp_path/'whole'/'history.json').read_text())]
    startup, epoch = time.perf_counter() - start - sum(epochs), float(np.mean(epochs))
    rng, out, kills, seen = np.random.default_rng(27), tmp_path/'killed', 0, set()
    while kills < 12:  # a kill while starting up every fourth time, else within the next two epochs (validation and writes included)
        done = load_checkpoint(out/'last.pt')['epoch'] if (out/'last.pt').exists() else 0
        seen.add(done)
        if done == len(epochs): shutil.rmtree(out); continue  # finished between kills: once more from the start, for more kills
        proc = _train_process(out, *(['--resume'] if done else ['--overwrite'] if out.exists() else []))
        delay = rng.uniform(0.2, startup) if kills % 4 == 3 else startup + rng.uniform(0, min(2, len(epochs) - done) * epoch)
        try: code = proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL); proc.wait(); kills += 1
            for name in ('last.pt', 'best.pt'):  # whatever a kill leaves is a whole checkpoint
                if (out/name).exists(): load_checkpoint(out/name)
            continue
        assert code == 0, proc.stderr.read()
    assert len(seen) >= 4 and max(seen) > 0, seen  # kills fell between epochs, not only while starting up
    last = _train_process(out, *(['--resume'] if (out/'last.pt').exists() else ['--overwrite'] if out.exists() else []))
    assert last.wait(timeout=600) == 0, last.stderr.read()
    assert _history(out) == _history(tmp_path/'whole')
    a, b = load_checkpoint(out/'last.pt')['model'], load_checkpoint(tmp_path/'whole'/'last.pt')['model']
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(out/'best.pt')['epoch'] == load_checkpoint(tmp_path/'whole'/'best.pt')['epoch']
    assert not list(out.glob('.*.tmp')) and not (out/'.lock').exists()  # stale temporary files and the lock are gone

def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try: r = run('train', *QUICK, '--out', tmp_path/'run')
    finally: os.umask(old)
    assert r.returncode == 0
    assert {oct((tmp_path/'run'/n).stat().st_mode & 0o777) for n in ('last.pt', 'history.json', 'config.json')} == {oct(0o640)}

# 4. existing outputs are refused unless asked to replace them
def test_train_refuses_a_folder_that_holds_a_run(phantom_run, tmp_path):
    shutil.copytree(phantom_run, tmp_path/'run')
    before = digest(tmp_path/'run')
    r = run('train', *QUICK, '--seed', '1', '--out', tmp_path/'run')
    assert r.returncode == 2 and 'holds a run' in r.stderr and '--resume' in r.stderr and digest(tmp_path/'run') == before
    assert run('train', *QUICK, '--seed', '1', '--out', tmp_path/'run', '--overwrite').returncode == 0
    assert json.loads((tmp_path/'run'/'config.json').read_text())['run']['seed'] == 1

def test_pack_refuses_an_existing_file(tmp_path):
    data = lgg_copy(tmp_path)
    assert run('pack', '--data', f'lgg:{data}', '--size', '32', '--out', tmp_path/'p.npz', '--no-progress').returncode == 0
    before = digest(tmp_path)
    r = run('pack', '--data', f'lgg:{data}', '--size', '16', '--out', tmp_path/'p.npz', '--no-progress')
    assert r.returncode == 2 and 'exists' in r.stderr and '--overwrite' in r.stderr and digest(tmp_path) == before
    assert run('pack', '--data', f'lgg:{data}', '--size', '16', '--out', tmp_path/'p.npz', '--no-progress', '--overwrite').returncode == 0

def test_out_naming_a_file_is_one_line(tmp_path):
    (tmp_path/'afile').write_text('x')
    r = run('train', *QUICK, '--out', tmp_path/'afile')
    assert r.returncode == 2 and 'is a file, not a folder' in r.stderr and 'Traceback' not in r.stderr

# 5. the split is part of the run
def test_evaluate_keeps_the_recorded_split_after_a_case_is_added(tmp_path):
    data = lgg_copy(tmp_path, cases=4)
    assert run('train', *QUICK, '--data', f'lgg:{data}', '--size', '32', '--val-fraction', '0.5', '--out', tmp_path/'run').returncode == 0
    split = load_checkpoint(tmp_path/'run'/'last.pt')['split']
    shutil.copytree(data/split['train'][0], data/'TCGA_YY_0009_20000101')
    for p in (data/'TCGA_YY_0009_20000101').iterdir(): p.rename(p.with_name(p.name.replace(split['train'][0], 'TCGA_YY_0009_20000101')))
    r = run('evaluate', '--checkpoint', tmp_path/'run'/'last.pt', '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(c['case'] for c in json.loads((tmp_path/'evaluation.json').read_text())['per_case']) == split['val']

def test_evaluate_warns_when_a_held_out_case_changed(tmp_path):
    "The checkpoint records each case's slice count: a held-out case that lost a slice since training is named."
    data = lgg_copy(tmp_path, cases=4)
    assert run('train', *QUICK, '--data', f'lgg:{data}', '--size', '32', '--val-fraction', '0.5', '--out', tmp_path/'run').returncode == 0
    ckpt = load_checkpoint(tmp_path/'run'/'last.pt')
    case = ckpt['split']['val'][0]
    assert ckpt['slices'][case] == len(list((data/case).glob('*_mask.tif')))
    image = sorted((data/case).glob('*_mask.tif'))[-1]
    image.unlink(); image.with_name(image.name.replace('_mask', '')).unlink()
    with pytest.warns(UserWarning, match=f"changed since it was trained \\({case}: {ckpt['slices'][case]} slices then, {ckpt['slices'][case] - 1} now"):
        evaluate_checkpoint(tmp_path/'run'/'last.pt')

# 6. every numeric argument checked
@pytest.mark.parametrize('args, message', [
    (['--grad-clip', '-1'], 'grad_clip must be > 0'), (['--lr', 'inf'], 'lr must be a finite number'), (['--lr', '0'], 'lr must be > 0'),
    (['--seed', '-1'], 'seed must be a whole number >= 0'), (['--threshold', '1.5'], 'threshold must be in (0, 1)'),
    (['--lesion-share', '2'], 'lesion_share must be in (0, 1)'), (['--channels', 'bogus'], "channels='bogus' is not valid"),
    (['--channels', 'flair'], "channels='flair' applies to file data"), (['--folds', '3', '--val-fraction', '0.3'], 'has no effect with folds=3'),
    (['--loss', 'weighted_bce'], "needs the option(s) ['pos_weight']"), (['--loss', 'weighted_bce', '--loss-option', 'pos_weight=abc'], 'pos_weight'),
])
def test_bad_numbers_and_ignored_flags_are_refused(args, message, tmp_path):
    r = run('train', *QUICK, *args, '--out', tmp_path/'o')
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and 'Traceback' not in r.stderr and r.stderr.count('\n') == 1 and not (tmp_path/'o'/'last.pt').exists()

def test_channels_with_packed_data_is_refused(tmp_path):
    data = lgg_copy(tmp_path)
    assert run('pack', '--data', f'lgg:{data}', '--size', '32', '--out', tmp_path/'p.npz', '--no-progress').returncode == 0
    r = run('train', *QUICK, '--data', f'packed:{tmp_path/"p.npz"}', '--size', '32', '--channels', 'flair', '--out', tmp_path/'o')
    assert r.returncode == 2 and 'picks LGG sequences' in r.stderr

# 7. predict: non-finite inputs, impossible thresholds
def test_predict_refuses_nan_inputs_and_impossible_thresholds(phantom_run, tmp_path):
    (tmp_path/'in').mkdir(); np.save(tmp_path/'in'/'bad.npy', np.full((64, 64), np.nan, np.float32))
    r = run('predict', '--checkpoint', phantom_run/'last.pt', '--input', tmp_path/'in', '--out', tmp_path/'out')
    assert r.returncode == 2 and 'bad.npy' in r.stderr and 'NaN or infinite' in r.stderr and not (tmp_path/'out').exists()
    assert run('predict', '--checkpoint', phantom_run/'last.pt', '--input', tmp_path/'in', '--out', tmp_path/'out', '--nonfinite', 'zero').returncode == 0
    for t in ('1.5', 'nan'):
        r = run('predict', '--checkpoint', phantom_run/'last.pt', '--input', tmp_path/'in', '--out', tmp_path/'o2', '--threshold', t, '--nonfinite', 'zero')
        assert r.returncode == 2 and 'threshold must be a probability in (0, 1)' in r.stderr

# 8. inputs that would collide, outputs read back
def test_predict_refuses_inputs_whose_outputs_collide(phantom_run, tmp_path):
    (tmp_path/'in').mkdir()
    img = PhantomDataset(n=1, seed=3, size=64)[0][0][0].numpy()
    np.save(tmp_path/'in'/'x.npy', img); Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path/'in'/'x.png')
    r = run('predict', '--checkpoint', phantom_run/'last.pt', '--input', tmp_path/'in', '--out', tmp_path/'out')
    assert r.returncode == 2 and 'x.npy and x.png' in r.stderr

# 9. corrupt data found before training
@pytest.mark.parametrize('damage', ['truncated', 'zero-byte', 'wrong size', 'rgba'])
def test_a_corrupt_slice_is_named_before_training_and_can_be_skipped(damage, tmp_path):
    data = lgg_copy(tmp_path)
    bad = sorted((data/'TCGA_XX_0001_20000101').glob('*_3.tif'))[0]
    if damage == 'truncated': bad.write_bytes(bad.read_bytes()[:100])
    elif damage == 'zero-byte': bad.write_bytes(b'')
    elif damage == 'wrong size': Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(bad)
    else: Image.fromarray(np.zeros((32, 32, 4), np.uint8)).save(bad)
    r = run('train', *QUICK, '--data', f'lgg:{data}', '--size', '32', '--val-fraction', '0.34', '--out', tmp_path/'o')
    assert r.returncode == 2 and bad.name in r.stderr and 'Traceback' not in r.stderr and not (tmp_path/'o'/'last.pt').exists()
    with pytest.warns(UserWarning, match=re.escape(bad.name)):  # the skipped file is listed (on stderr from the command line)
        r = run('train', *QUICK, '--data', f'lgg:{data}', '--size', '32', '--val-fraction', '0.34', '--on-error', 'skip', '--out', tmp_path/'o2')
    assert r.returncode == 0

# 7. one clear line instead of a traceback
def test_damaged_checkpoints_get_one_line(phantom_run, tmp_path):
    (tmp_path/'empty.pt').write_bytes(b'')
    ck = torch.load(phantom_run/'last.pt', weights_only=True); del ck['epoch']; torch.save(ck, tmp_path/'noepoch.pt')
    for name, message in (('empty.pt', 'is empty (0 bytes)'), ('noepoch.pt', "lacks ['epoch']")):
        r = run('evaluate', '--checkpoint', tmp_path/name)
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr

def test_ctrl_c_says_interrupted_and_leaves_complete_files(tmp_path):
    "SIGINT to a real `segcourse train`: one line, exit 130, and every file of the run folder loads."
    env = dict(os.environ, OMP_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1')
    proc = subprocess.Popen([sys.executable, '-m', 'segcourse', 'train', '--quick', '--no-progress', '--epochs', '200', '--out', str(tmp_path/'run')],
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a shell's background job ignores SIGINT, and its children inherit that
    deadline = time.time() + 120
    while not (tmp_path/'run'/'last.pt').exists() and time.time() < deadline: time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and 'interrupted' in err and 'Traceback' not in err, err
    assert load_checkpoint(tmp_path/'run'/'last.pt')['epoch'] >= 1 and not (tmp_path/'run'/'.lock').exists()

def test_a_full_disk_is_one_line(monkeypatch, tmp_path):
    import segcourse.core
    def full(*a, **k): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(segcourse.core.tempfile, 'mkstemp', full)
    r = run('train', *QUICK, '--out', tmp_path/'run')
    assert r.returncode == 1 and 'No space left on device' in r.stderr and 'Traceback' not in r.stderr
