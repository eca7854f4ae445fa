"""`run_grid` over loss x optimizer x architecture on tiny phantoms: one row per run, per-model arguments, clear errors."""
import pytest
import torch

from segcourse.course import GridResult, plot_grid, run_grid, summarize_run
from segcourse.data import PhantomDataset

torch.set_num_threads(1)
TRAIN = PhantomDataset(n=16, seed=0, size=32, slices_per_case=4, fg_fraction=0.05)
VAL = PhantomDataset(n=8, seed=1, size=32, slices_per_case=4, fg_fraction=0.05)

def test_grid_of_losses_optimizers_and_models():
    g = run_grid(TRAIN, VAL, losses=('dice', 'bce'), optimizers=('adam', 'sgd'), models=('unet', 'segnet'), epochs=1,
                 model_kwargs={'unet': {'features': (4, 8)}, 'segnet': {'features': (4, 8)}}, batch_size=8)
    assert len(g.rows) == 9 and len(g.histories) == 8
    assert [(r['model'], r['loss'], r['optimizer']) for r in g.rows][:4] == [('all-background', '-', '-'), ('unet', 'dice', 'adam'), ('unet', 'dice', 'sgd'), ('unet', 'bce', 'adam')]
    assert {r['lr'] for r in g.rows[1:]} == {3e-3, 3e-2}
    assert g.rows[0]['best_dice'] == 0 and len(run_grid(TRAIN, VAL, optimizers=('adam',), epochs=1, model_kwargs={'features': (4, 8)}, batch_size=8, baseline=False).rows) == 1
    for r in g.rows[1:]:
        assert r['epochs'] == r['best_epoch'] == r['converged_epoch'] == 1
        assert 0 <= r['best_dice_case_mean'] <= 1 and r['seconds'] > 0
    assert 'unet/bce/sgd' in g.histories
    text = repr(g.table()); md = g.table().to_markdown()
    assert 'best_dice_case_median' in text and md.startswith('| model | loss |')
    fig = plot_grid(g); assert len(fig.axes) == 2

def test_same_seed_same_start():
    a = run_grid(TRAIN, VAL, optimizers=('adam',), epochs=1, model_kwargs={'features': (4, 8)}, batch_size=8)
    b = run_grid(TRAIN, VAL, optimizers=('adam',), epochs=1, model_kwargs={'features': (4, 8)}, batch_size=8)
    strip = lambda g: [{k: v for k, v in h.items() if k != 'seconds'} for h in g.histories['unet/dice_bce/adam']]
    assert strip(a) == strip(b)

def test_errors():
    with pytest.raises(ValueError, match=r"lr has no rate for optimizer\(s\) \['adamw'\]"):
        run_grid(TRAIN, VAL, optimizers=('adamw',), lr={'adam': 1e-3})
    with pytest.raises(ValueError, match="did you mean 'adam'"):
        run_grid(TRAIN, VAL, optimizers=('adma',), lr=1e-3, epochs=1, model_kwargs={'features': (4, 8)})
    with pytest.raises(ValueError, match='history is empty'): summarize_run([])
