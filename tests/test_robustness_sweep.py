"Robustness sweeps: table shape and keys, severity 0 = clean evaluation, summaries on fake models, errors."
import math
import pytest, torch

from segcourse.models import get_model
from segcourse.phantoms import PhantomDataset
from segcourse.robustness import CORRUPTIONS, corrupt, robustness_sweep, sweep_summary, plot_sweep
from segcourse.train import make_loader, validate
from segcourse.accumulate import MetricAccumulator

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def ds(): return PhantomDataset(n=6, seed=3, size=32, channels=1)

@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    return get_model('unet', in_channels=1, features=(4, 8, 16)).eval()

def threshold_model(x): return (x[:, :1] - 0.6) * 20  # lesions are brighter than tissue on a 1-channel phantom

def test_table_shape_keys_and_order(ds):
    res = robustness_sweep({'a': threshold_model, 'b': threshold_model}, ds, ['blur', 'contrast', 'ghosting'], (1, 4),
                           metrics=('dice', 'iou', 'precision'))
    assert len(res.rows) == 2 * (1 + 3 * 2) and len(res.summary) == 2
    assert all(list(r) == ['model', 'corruption', 'severity', 'dice', 'iou', 'precision'] for r in res.rows)
    assert [(r['corruption'], r['severity']) for r in res.rows[:3]] == [('none', 0), ('blur', 1), ('blur', 4)]
    assert res.rows[:7] == [dict(r, model='a') for r in res.rows[7:]]  # same model, same numbers: deterministic
    assert len(res.table().rows) == 14 and res.summary_table().columns == ['model', 'clean_dice', 'mean_dice', 'relative_dice', 'auc_dice']

@pytest.mark.parametrize('level', ['micro', 'slice', 'case'])
def test_severity_zero_is_clean_evaluation(ds, net, level):
    res = robustness_sweep(net, ds, ['gaussian_noise'], (5,), metrics=('dice', 'sensitivity'), level=level, batch_size=4)
    acc, _, _ = validate(net, make_loader(ds, 4))
    want = acc.compute(level)
    assert res.rows[0]['dice'] == pytest.approx(want['dice']) and res.rows[0]['sensitivity'] == pytest.approx(want['sensitivity'])

def test_corrupted_rows_use_seed_per_batch(ds, net):
    res = robustness_sweep(net, ds, ['rician_noise'], (3,), metrics=('dice',), batch_size=4, seed=7)
    acc = MetricAccumulator(('dice',), threshold=0.5, from_logits=True)
    for b, (x, y) in enumerate(make_loader(ds, 4)):
        with torch.no_grad(): acc.update(net(corrupt(x, 'rician_noise', 3, seed=7 + b)), y > 0.5)
    assert res.rows[1]['dice'] == pytest.approx(acc.compute('micro')['dice'])
    assert robustness_sweep(net, ds, ['rician_noise'], (3,), metrics=('dice',), batch_size=4, seed=7).rows == res.rows

def test_sliding_window_rows(ds, net):
    whole = robustness_sweep(net, ds, ['blur'], (2,), metrics=('dice',))
    windows = robustness_sweep(net, ds, ['blur'], (2,), metrics=('dice',), roi_size=(32, 32))
    assert [r['dice'] for r in whole.rows] == pytest.approx([r['dice'] for r in windows.rows], abs=1e-6)

def test_summary_by_hand_constant_model(ds):
    "A model that calls every pixel lesion: Dice 2F/(F+N) whatever the corruption, relative 1, AUC = clean."
    res = robustness_sweep(lambda x: torch.ones_like(x[:, :1]), ds, list(CORRUPTIONS), (1, 5), metrics=('dice',))
    fg = sum(ds[i][1].sum().item() for i in range(len(ds))); n = len(ds) * 32 * 32
    s = res.summary[0]
    assert s['clean_dice'] == pytest.approx(2 * fg / (fg + n))
    assert s['relative_dice'] == pytest.approx(1) and s['auc_dice'] == pytest.approx(s['clean_dice'])

def test_summary_by_hand_rows():
    rows = [dict(model='m', corruption='none', severity=0, dice=1.0)]
    rows += [dict(model='m', corruption='a', severity=s, dice=1 - 0.2 * s) for s in (1, 2, 3, 4, 5)]  # linear to 0
    rows += [dict(model='m', corruption='b', severity=s, dice=0.5) for s in (2, 4)]  # a step
    s = sweep_summary(rows)[0]
    mean = (sum(1 - 0.2 * k for k in range(1, 6)) + 1.0) / 7
    auc_a, auc_b = 0.5, ((1 + 0.5) / 2 * 2 + 0.5 * 2) / 4
    assert s['mean_dice'] == pytest.approx(mean) and s['relative_dice'] == pytest.approx(mean)
    assert s['auc_dice'] == pytest.approx((auc_a + auc_b) / 2)

def test_summary_needs_clean_row():
    with pytest.raises(ValueError, match="no clean row"):
        sweep_summary([dict(model='m', corruption='a', severity=1, dice=0.5)])

@pytest.mark.parametrize('kwargs,err,msg', [
    (dict(corruptions=['fog']), ValueError, "corruptions='fog' is not valid"),
    (dict(severities=(0, 2)), ValueError, 'severities must be ints in 1..5'),
    (dict(severities=(6,)), ValueError, 'severities must be ints in 1..5'),
    (dict(severities=()), ValueError, 'severities must be ints in 1..5'),
    (dict(metrics=('dice', 'hausdorff')), ValueError, "metrics='hausdorff' is not valid"),
    (dict(level='pixel'), ValueError, "level='pixel' is not valid"),
    (dict(summary_metric='iou'), ValueError, "summary_metric='iou' is not valid"),
])
def test_bad_arguments(ds, kwargs, err, msg):
    with pytest.raises(err, match=msg): robustness_sweep(threshold_model, ds, **kwargs)

def test_bad_models(ds):
    with pytest.raises(TypeError, match='models must be a model or a dict'): robustness_sweep(3, ds)
    with pytest.raises(ValueError, match='models is empty'): robustness_sweep({}, ds)

def test_model_mode_restored(ds, net):
    net.train(); robustness_sweep(net, ds, ['blur'], (1,)); assert net.training
    net.eval()

def test_plot(ds):
    import matplotlib; matplotlib.use('Agg')
    res = robustness_sweep({'t': threshold_model}, ds, ['blur', 'gamma'], (1, 2))
    fig = plot_sweep(res, 'dice', ncols=1)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="metric='iou' is not a column"): plot_sweep(res, 'iou')
