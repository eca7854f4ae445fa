"""Checkpoints of `fit`: a resumed run equals an uninterrupted one bit for bit (CPU), writes are atomic
(a killed write leaves the previous checkpoint loadable), loading is `weights_only`, and errors are clear."""
import os, signal, subprocess, sys, textwrap, time

import pytest
import torch

from segcourse.checkpoint import atomic_save, load_checkpoint, load_weights, save_checkpoint
from segcourse.core import seed_everything
from segcourse.models import SegNet, UNet, UNetPlusPlus
from segcourse.data import PhantomDataset, default_augmentation
from segcourse.training import fit

torch.set_num_threads(1)
TRAIN = PhantomDataset(n=16, seed=0, size=64, slices_per_case=4)
VAL = PhantomDataset(n=8, seed=1, size=64, slices_per_case=4)

class Interrupt(torch.nn.Module):
    "A loss that raises KeyboardInterrupt at its `at`-th training call, like a user pressing Ctrl-C."
    def __init__(self, at):
        super().__init__(); self.at, self.calls = at, 0
        from segcourse.losses.registry import get_loss
        self.loss = get_loss('dice_bce')
    def forward(self, logits, target):
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.at: raise KeyboardInterrupt
        return self.loss(logits, target)

def _model(): return UNet(features=(4, 8), dropout=0.1)  # dropout: the global RNG must be restored too

def _strip(history): return [{k: v for k, v in h.items() if k != 'seconds'} for h in history]

SETTINGS = {
    'adam-onecycle-lesion': dict(optimizer='adam', schedule='onecycle', lesion_share=0.5, output_prior=0.01, lr=3e-3),
    'sgd-plateau': dict(optimizer='sgd', schedule='plateau', lr=1e-2, weight_decay=1e-4),
    'adamw-cosine-warmup-clip': dict(optimizer='adamw', schedule='cosine', warmup_epochs=1, grad_clip=0.5, lr=3e-3),
    'adam-batch-augmentation': dict(optimizer='adam', schedule='poly', lr=3e-3, augment=default_augmentation(batch=True)),
}

@pytest.mark.parametrize('name', list(SETTINGS))
def test_resume_equals_uninterrupted(name, tmp_path):
    kw = dict(SETTINGS[name], epochs=4, batch_size=8, detailed=True, progress=False, seed=3)
    seed_everything(3); full_model = _model()
    full = fit(full_model, TRAIN, VAL, out=tmp_path/'full', **kw)
    seed_everything(3)
    with pytest.raises(KeyboardInterrupt):  # 2 steps per epoch: the 5th training step is the first of epoch 3
        fit(_model(), TRAIN, VAL, loss=Interrupt(at=5), out=tmp_path/'cut', **kw)
    assert load_checkpoint(tmp_path/'cut'/'last.pt')['epoch'] == 2
    resumed_model = UNet(features=(4, 8), dropout=0.1)  # fresh weights: all come from the checkpoint
    resumed = fit(resumed_model, TRAIN, VAL, resume=tmp_path/'cut'/'last.pt', out=tmp_path/'cut', **kw)
    assert _strip(resumed) == _strip(full)
    for (k, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), k
    assert load_checkpoint(tmp_path/'cut'/'last.pt')['history'][-1]['epoch'] == 4

def test_checkpoint_contents(tmp_path):
    seed_everything(0)
    fit(_model(), TRAIN, VAL, epochs=2, batch_size=8, schedule='onecycle', progress=False, out=tmp_path,
        model_spec={'name': 'unet', 'kwargs': {'features': [4, 8], 'dropout': 0.1}}, config={'data': 'phantom'})
    ck = load_checkpoint(tmp_path/'last.pt')
    assert {'model', 'optimizer', 'scheduler', 'scaler', 'epoch', 'history', 'rng', 'model_spec', 'config', 'best', 'best_epoch'} <= set(ck)
    assert set(ck['rng']) == {'python', 'numpy', 'torch', 'cuda', 'generators'}
    assert ck['config'] == {'data': 'phantom'} and ck['model_spec']['name'] == 'unet'
    assert (tmp_path/'history.csv').read_text().splitlines()[0].startswith('epoch,train_loss,val_loss,val_dice')
    import json
    cfg = json.loads((tmp_path/'config.json').read_text())
    assert cfg['fit']['epochs'] == 2 and cfg['fit']['schedule'] == 'onecycle' and cfg['run'] == {'data': 'phantom'}

def test_deep_supervision_trains_every_head(tmp_path):
    seed_everything(0)
    m = UNetPlusPlus(features=(4, 8, 16), deep_supervision=True)
    h = fit(m, TRAIN, VAL, epochs=1, batch_size=8, output_prior=0.01, progress=False)
    assert all(p.grad is not None for p in m.heads.parameters())
    assert 0 <= h[0]['val_dice'] <= 1

def test_weights_of_another_model_are_refused(tmp_path):
    save_checkpoint(tmp_path/'c.pt', UNet(features=(4, 8)), model_spec={'name': 'unet', 'kwargs': {}})
    with pytest.raises(ValueError, match='weights of a UNet'):
        load_weights(SegNet(features=(4, 8)), load_checkpoint(tmp_path/'c.pt'))
    with pytest.raises(ValueError, match='weights of a UNet'):
        load_weights(UNet(features=(8, 16)), load_checkpoint(tmp_path/'c.pt'))
    with pytest.raises(ValueError, match='weights of a UNet'):
        fit(SegNet(features=(4, 8)), TRAIN, epochs=1, resume=tmp_path/'c.pt', progress=False)

def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='no such file'): load_checkpoint(tmp_path/'none.pt')
    torch.save({'weights': torch.zeros(2)}, tmp_path/'plain.pt')
    with pytest.raises(ValueError, match='not a segcourse checkpoint'): load_checkpoint(tmp_path/'plain.pt')
    (tmp_path/'text.pt').write_text('hello')
    with pytest.raises(ValueError, match='could not be read safely'): load_checkpoint(tmp_path/'text.pt')

def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    p = save_checkpoint(tmp_path/'last.pt', UNet(features=(4, 8)), epoch=1)
    def broken_save(obj, f): f.write(b'x' * 1000); raise OSError('no space left on device')
    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='no space'): save_checkpoint(p, UNet(features=(4, 8)), epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(p)['epoch'] == 1
    assert [f.name for f in tmp_path.iterdir()] == ['last.pt']  # the temporary file is gone

CHILD = textwrap.dedent('''
    import os, sys, torch
    from segcourse.checkpoint import save_checkpoint
    from segcourse.models.unet import UNet
    torch.set_num_threads(1)
    path, mode = sys.argv[1], sys.argv[2]
    model = UNet(features=(16, 32, 64, 128))
    save_checkpoint(path, model, epoch=1)
    if mode == 'die-mid-write':
        real = torch.save
        def dying(obj, f):  # write half of the file, then the process vanishes (no cleanup, no exception)
            real(obj, f); f.truncate(f.tell() // 2); f.flush(); os._exit(1)
        torch.save = dying
        save_checkpoint(path, model, epoch=2)
    else:
        print('ready', flush=True)
        for epoch in range(2, 10**6): save_checkpoint(path, model, epoch=epoch)
''')

def _child(tmp_path, mode):
    script = tmp_path/'child.py'; script.write_text(CHILD)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, str(script), str(tmp_path/'last.pt'), mode], env=env, stdout=subprocess.PIPE, text=True)

def test_process_dying_mid_write_leaves_previous_checkpoint(tmp_path):
    proc = _child(tmp_path, 'die-mid-write')
    assert proc.wait(timeout=120) == 1
    assert load_checkpoint(tmp_path/'last.pt')['epoch'] == 1
    assert any(f.name.endswith('.tmp') for f in tmp_path.iterdir())  # the half-written file was never renamed

def test_sigkill_during_repeated_writes_leaves_a_loadable_checkpoint(tmp_path):
    proc = _child(tmp_path, 'loop')
    assert proc.stdout.readline().strip() == 'ready'
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL); proc.wait(timeout=30)
    assert load_checkpoint(tmp_path/'last.pt')['epoch'] >= 1

def test_atomic_save_roundtrip(tmp_path):
    atomic_save({'a': torch.arange(3)}, tmp_path/'sub'/'x.pt')
    assert torch.equal(torch.load(tmp_path/'sub'/'x.pt', weights_only=True)['a'], torch.arange(3))

def test_time_limit_stops_between_epochs():
    seed_everything(0)
    h = fit(_model(), TRAIN, VAL, epochs=5, batch_size=8, time_limit=1e-4, progress=False)
    assert [r['epoch'] for r in h] == [1]  # the first epoch always runs; no second one fits in 6 ms

def test_bf16_on_cpu_trains():
    seed_everything(0)
    h = fit(_model(), TRAIN, VAL, epochs=1, batch_size=8, amp='bf16', channels_last=True, grad_clip=1.0, progress=False)
    assert h[0]['train_loss'] > 0 and 0 <= h[0]['val_dice'] <= 1

def test_tensorboard_logs_scalars_and_overlays(tmp_path):
    pytest.importorskip('tensorboard', reason='tensorboard is not installed (pip install tensorboard)')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    seed_everything(0)
    fit(_model(), TRAIN, VAL, epochs=2, batch_size=8, out=tmp_path, tensorboard=True, progress=False)
    ev = EventAccumulator(str(tmp_path/'tensorboard')).Reload()
    assert {'train_loss', 'val_dice'} <= set(ev.Tags()['scalars']) and 'val/overlay' in ev.Tags()['images']
    assert [e.step for e in ev.Scalars('val_dice')] == [1, 2]


def test_compiled_training_keeps_plain_checkpoints_and_resumes(tmp_path):
    "fit(compile=True): the compiled model trains, its checkpoints hold the plain model's keys, and a run resumed compiled goes on."
    seed_everything(0); model = UNet(features=(4, 8))
    history = fit(model, TRAIN, VAL, epochs=1, batch_size=8, progress=False, compile=True, out=tmp_path)
    state = load_checkpoint(tmp_path/'last.pt')['model']
    assert not any(k.startswith('_orig_mod.') for k in state) and set(state) == set(UNet(features=(4, 8)).state_dict())
    plain = load_weights(UNet(features=(4, 8)), load_checkpoint(tmp_path/'last.pt'))
    for (k, a), b in zip(model.state_dict().items(), plain.state_dict().values()): assert torch.equal(a, b), k
    resumed = fit(UNet(features=(4, 8)), TRAIN, VAL, epochs=2, batch_size=8, progress=False, compile=True, out=tmp_path, resume=tmp_path/'last.pt')
    assert [h['epoch'] for h in resumed] == [1, 2] and all(torch.isfinite(torch.tensor(h['train_loss'])) for h in resumed + history)
