"""`torchrun --nproc_per_node=2 -m segcourse train` on the CPU (gloo): after a few steps its weights match one process
training on the same global batch, its validation metrics are those of the whole validation set, and only rank 0 writes."""
import json, os, subprocess, sys

import pytest
import torch
import torch.distributed as dist

from segcourse.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason='torch.distributed with gloo is not available')

# 8 phantoms: one process takes them in one batch of 8; two processes take 4 each, one step per epoch either way.
# Instance norm (per image) and a per-image loss make the mean gradient of two halves that of the whole batch.
# SGD, not Adam: Adam divides by the root of the squared gradient, so rounding noise in near-zero gradient
# components (summation order differs) would become steps of size lr.
COMMON = ['train', '--data', 'phantom', '--n-train', '8', '--n-val', '6', '--size', '32', '--features', '4,8', '--norm', 'instance',
          '--loss', 'dice_bce', '--opt', 'sgd', '--lr', '0.05', '--schedule', 'constant', '--epochs', '3', '--lesion-share', 'none',
          '--seed', '0', '--no-progress']

def _env():
    return dict(os.environ, OMP_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1', SEGCOURSE_DEVICE='cpu')

def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    one = subprocess.run([sys.executable, '-m', 'segcourse', *COMMON, '--batch-size', '8', '--out', tmp_path/'one'],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'segcourse',
                          *COMMON, '--batch-size', '4', '--out', tmp_path/'two'],
                         capture_output=True, text=True, timeout=180, env=_env())
    assert two.returncode == 0, two.stderr[-3000:]
    assert 'on 2 process(es)' in two.stdout and two.stdout.count('trained 3 epoch(s)') == 1  # rank 0 alone reports

    a, b = load_checkpoint(tmp_path/'one'/'last.pt'), load_checkpoint(tmp_path/'two'/'last.pt')
    assert a['epoch'] == b['epoch'] == 3
    for k, w in a['model'].items():
        torch.testing.assert_close(b['model'][k], w, rtol=1e-4, atol=1e-5, msg=k)
    for ha, hb in zip(a['history'], b['history']):  # metrics reduced over ranks: those of all 6 validation phantoms
        for k in ('train_loss', 'val_loss', 'val_dice', 'val_dice_case_mean', 'val_dice_slice_mean'):
            assert abs(ha[k] - hb[k]) < 1e-4, (k, ha[k], hb[k])
    assert sorted(p.name for p in (tmp_path/'two').iterdir() if not p.name.startswith('.')) == \
        ['best.pt', 'config.json', 'history.csv', 'history.json', 'history.png', 'last.pt']

def test_lesion_oversampling_across_processes(tmp_path):
    "Two processes with --lesion-share: each draws its half of the epoch; the run trains, records the share and resumes."
    args = [a for a in COMMON if a not in ('--lesion-share', 'none')] + ['--lesion-share', '0.5', '--batch-size', '4']
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'segcourse', *args]
    r = subprocess.run(cmd + ['--out', tmp_path/'run'], capture_output=True, text=True, timeout=180, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path/'run'/'config.json').read_text())['run']['lesion_share'] == 0.5
    r = subprocess.run([a if a != '3' else '4' for a in cmd] + ['--out', tmp_path/'run', '--resume'], capture_output=True, text=True, timeout=180, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_checkpoint(tmp_path/'run'/'last.pt')['epoch'] == 4

def test_distributed_lesion_sampler_shares_and_splits_the_epoch():
    from segcourse.data.phantoms import PhantomDataset
    from segcourse.training.loaders import DistributedLesionSampler
    ds = PhantomDataset(n=96, seed=3, size=32)
    has = [ds.item_info(i)['foreground_fraction'] > 0 for i in range(len(ds))]
    draws = []
    for epoch in range(20):
        for rank in range(3):
            s = DistributedLesionSampler(ds, 0.5, seed=1, rank=rank, world_size=3); s.set_epoch(epoch)
            assert len(s) == 32
            draws += list(s)
    assert abs(sum(has[i] for i in draws) / len(draws) - 0.5) < 0.03  # 1,920 draws
    assert sum(has) / len(has) < 0.45  # the data alone would not give half
