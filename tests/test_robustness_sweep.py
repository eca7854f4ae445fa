"Robustness sweeps: table shape and keys, severity 0 = clean evaluation, summaries on fake models, errors."
import math
import pytest, torch

from segcourse.models import get_model
from segcourse.data import PhantomDataset
from segcourse.robustness import CORRUPTIONS, corrupt, robustness_sweep, sweep_summary, plot_sweep
from segcourse.training import make_loader, validate
from segcourse.metrics import MetricAccumulator, lesion_counts

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

# --- experiments: patch sampler, skip patterns, difficulty groups ---
import numpy as np
from segcourse.robustness.experiments import (PatchDataset, foreground_background_ratio, skip_patterns, lesion_sizes,
                                               dice_by_difficulty, skip_ablation, fbr_experiment, CorruptionAugment)

@pytest.fixture(scope='module')
def slices(): return PhantomDataset(n=20, seed=5, size=64, lesion_prob=0.7)

@pytest.mark.parametrize('size', [8, 24, (16, 40)])
def test_patches_hold_lesions_at_lesion_prob_1(slices, size):
    p = PatchDataset(slices, size, lesion_prob=1.0, samples=40, seed=2)
    h, w = (size, size) if isinstance(size, int) else size
    for i in range(len(p)):
        img, m = p[i]
        assert img.shape[-2:] == (h, w) and m.shape == (1, h, w)
        if slices[i % len(slices)][1].any(): assert m.any(), i

def test_patch_crop_is_the_window(slices):
    p = PatchDataset(slices, 16, lesion_prob=0.5, seed=1)
    for i in range(5):
        item, top, left = p.window(i)
        assert torch.equal(p[i][0], slices[item][0][:, top:top + 16, left:left + 16])

def test_patch_fbr_by_lesion_prob_and_size(slices):
    f = lambda size, prob: foreground_background_ratio(PatchDataset(slices, size, lesion_prob=prob, samples=60, seed=0))
    assert f(16, 1.0) > f(16, 0.5) > f(16, 0.0)
    assert f(16, 1.0) > f(32, 1.0) > f(64, 1.0)
    whole = foreground_background_ratio(slices)
    assert f(64, 1.0) == pytest.approx(whole) and f(16, 0.0) < 3 * whole  # uniform patches: about the data set's FBR

def test_patch_determinism(slices):
    a = [PatchDataset(slices, 16, 0.5, seed=9).window(i) for i in range(20)]
    assert a == [PatchDataset(slices, 16, 0.5, seed=9).window(i) for i in range(20)]
    assert a != [PatchDataset(slices, 16, 0.5, seed=10).window(i) for i in range(20)]
    torch.manual_seed(1); np.random.seed(1); b = [PatchDataset(slices, 16, 0.5, seed=9).window(i) for i in range(20)]
    assert a == b  # independent of the global random state

def test_fbr_by_hand():
    ds = torch.utils.data.TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    ds.tensors[1][0, 0, :2, :2] = 1  # 4 lesion pixels out of 32: FBR 4 / 28
    assert foreground_background_ratio(ds) == pytest.approx(4 / 28)

@pytest.mark.parametrize('kwargs,msg', [(dict(patch_size=0), 'patch_size must be a positive int'),
                                        (dict(patch_size=(8,)), 'patch_size must be a positive int'),
                                        (dict(patch_size=8, lesion_prob=-0.1), 'lesion_prob must be in'),
                                        (dict(patch_size=8, jitter=0.5), 'jitter must be in'),
                                        (dict(patch_size=8, samples=0), 'samples must be a positive int')])
def test_patch_bad_arguments(slices, kwargs, msg):
    with pytest.raises(ValueError, match=msg): PatchDataset(slices, **kwargs)

def test_patch_larger_than_image(slices):
    with pytest.raises(ValueError, match=r'patch_size \(65, 65\) is larger'): PatchDataset(slices, 65)[0]
    with pytest.raises(IndexError): PatchDataset(slices, 8)[20]

def test_lesion_sizes_agree_with_lesion_counts(slices):
    rng = np.random.default_rng(0)
    for i in range(len(slices)):
        t = slices[i][1][0].numpy() > 0.5
        p = np.roll(t, int(rng.integers(-3, 4)), axis=1) | (rng.random(t.shape) > 0.999)
        found, fp = lesion_sizes(p, t, min_overlap=0.2)
        c = lesion_counts(p, t, min_overlap=0.2)
        assert (len(found), sum(f for _, f in found), len(fp)) == (int(c['lesions']), int(c['detected']), int(c['false_positives']))

def test_skip_patterns_and_ablation_errors(slices):
    assert skip_patterns(1) == {'all': (True,), 'none': (False,), 'shallow': (True,), 'deep': (False,)}
    with pytest.raises(ValueError, match="architectures='both' is not valid"): skip_ablation(slices, slices, ['both'])
    with pytest.raises(ValueError, match='train_noise must be severities'): skip_ablation(slices, slices, train_noise=(-1,))
    with pytest.raises(ValueError, match='severity must be an int'): CorruptionAugment('blur', 6)
    with pytest.raises(ValueError, match='patch_sizes must be multiples of 8'): fbr_experiment(slices, slices, patch_sizes=(12,), features=(4, 8, 16, 32))
    with pytest.raises(ValueError, match='size_bins must be'): fbr_experiment(slices, slices, size_bins=(10, 5))

def test_difficulty_groups_by_hand():
    n = 7
    ann = torch.zeros(n, 2, 6, 6); ann[:, :, 0:3, 0:3] = 1
    for k in range(n): ann[k, 1, 3, :k] = 1  # disagreement grows with k
    target = ann[:, :1]
    probs = torch.zeros(n, 1, 6, 6); probs[:, :, 0:3, 0:3] = 1
    for k in range(n): probs[k, 0, 5, :k] = 1  # Dice falls with k: 2*9 / (18 + k)
    ds = torch.utils.data.TensorDataset(torch.zeros(n, 1, 6, 6), target)
    res = dice_by_difficulty(probs, ds, annotations=ann, groups=3)
    assert [r['images'] for r in res.rows] == [3, 2, 2]  # numpy.array_split
    dice = [18 / (18 + k) for k in range(n)]
    assert [r['dice_mean'] for r in res.rows] == pytest.approx([np.mean(dice[:3]), np.mean(dice[3:5]), np.mean(dice[5:])])
    res2 = dice_by_difficulty(probs, ds, annotations=ann, groups=2)
    assert [r['difficulty'] for r in res2.rows] == ['easy', 'hard']
    with pytest.raises(ValueError, match='annotations must be N A H W'): dice_by_difficulty(probs, ds, annotations=ann[:3])
    with pytest.raises(ValueError, match='groups must be a positive int'): dice_by_difficulty(probs, ds, annotations=ann, groups=0)
