"""Threshold sweeps: exact agreement with one evaluation per threshold (ties, grids, dtypes, chunking),
streaming, per-image means, curves against scikit-learn, and threshold selection."""
import math, warnings

import numpy as np
import pytest
import torch

import segcourse.metrics.thresholds as T
from segcourse.metrics import (
    COUNT_METRICS, from_counts, confusion, ThresholdSweep, roc_curve, pr_curve, sweep_counts,
    sweep_thresholds, threshold_grid, score_threshold, select_threshold, threshold_report, threshold_table)
from segcourse import metrics as M

torch.set_num_threads(1)


def _data(n=4, shape=(9, 10), seed=0, decimals=2):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 1, *shape, generator=g)
    if decimals is not None: p = (p * 10**decimals).round() / 10**decimals  # many values exactly on the grid
    t = torch.rand(n, 1, *shape, generator=g) < p
    return p, t


def _check_exact(p, t, grid):
    c = sweep_counts(p, t, grid)
    for k, thr in enumerate(threshold_grid(grid).tolist()):
        ref = confusion(p, t, threshold=thr)
        assert [x[:, k].tolist() for x in c] == [x.tolist() for x in ref], (thr, k)


@pytest.mark.parametrize('grid', [101, 11, 201, [0.1, 0.3, 0.5, 0.7, 0.9], np.linspace(0.2, 0.8, 7), [0.05, 0.5, 0.51, 0.95]])
def test_sweep_counts_exact(grid):
    _check_exact(*_data(), grid)


@pytest.mark.parametrize('dtype', [torch.float16, torch.float32, torch.float64])
def test_sweep_counts_dtypes(dtype):
    p, t = _data(decimals=2)
    _check_exact(p.to(dtype), t, 101)


def test_sweep_values_outside_unit_interval_and_3d():
    p, t = _data(n=2, shape=(4, 5, 6), seed=3)
    _check_exact(p * 3 - 1, t, 21)  # scores in [-1, 2]: below the grid never, above always foreground


def test_chunking(monkeypatch):
    p, t = _data(n=5, shape=(7, 9))
    ref = sweep_counts(p, t, 101)
    for chunk in (1, 7, 50):
        monkeypatch.setattr(T, '_CHUNK', chunk)
        got = sweep_counts(p, t, 101)
        assert all(torch.equal(a, b) for a, b in zip(ref, got))


def test_streaming_equals_one_pass_and_per_image_mean():
    p, t = _data(n=7, seed=5)
    t[2] = False  # a lesion-free image
    one = sweep_thresholds(p, t, metrics=COUNT_METRICS)
    s = ThresholdSweep(metrics=COUNT_METRICS)
    for a, b in ((0, 3), (3, 4), (4, 7)): s.update(p[a:b], t[a:b])
    many = s.compute()
    for m in COUNT_METRICS:
        np.testing.assert_allclose(one.micro[m], many.micro[m]); np.testing.assert_allclose(one.mean[m], many.mean[m])
    for thr in (0.0, 0.25, 0.5, 0.99):
        k = int(round(thr * 100))
        for m in ('dice', 'sensitivity', 'gmean', 'youden'):
            assert one.mean[m][k] == pytest.approx(float(getattr(M, m)(p, t, threshold=thr).mean()))
            assert one.micro[m][k] == pytest.approx(float(getattr(M, m)(p.flatten(), t.flatten(), threshold=thr)))
    nan = sweep_thresholds(p, t, empty='nan')
    k = 50
    assert nan.mean['sensitivity'][k] == pytest.approx(float(np.nanmean(M.sensitivity(p.numpy(), t.numpy(), threshold=0.5, empty='nan'))))
    assert one.n_images == 7 and many.n_images == 7


def test_iterable_of_batches_and_table():
    p, t = _data(n=6)
    batches = [(p[:2], t[:2]), (p[2:], t[2:])]
    a, b = sweep_thresholds(batches), sweep_thresholds(p, t)
    np.testing.assert_allclose(a.micro['dice'], b.micro['dice'])
    tab = threshold_table(p, t)
    assert [r['threshold'] for r in tab.rows] == ['all-background', 0.1, 0.3, 0.5, 0.7, 0.9]
    base = tab.rows[0]  # predicting no lesion anywhere
    assert base['accuracy'] == pytest.approx(1 - float(t.float().mean())) and base['sensitivity'] == base['dice'] == base['iou'] == 0
    assert base['specificity'] == 1
    for r in tab.rows[1:]:
        assert r['iou'] == pytest.approx(float(M.iou(p.flatten(), t.flatten(), threshold=r['threshold'])))
        assert r['accuracy'] == pytest.approx(float(M.accuracy(p.flatten(), t.flatten(), threshold=r['threshold'])))
    mean_tab = threshold_table(p, t, average='mean')
    assert mean_tab.rows[3]['dice'] == pytest.approx(float(M.dice(p, t, threshold=0.5).mean()))
    assert mean_tab.rows[0]['dice'] == pytest.approx(float(M.dice(p * 0, t, threshold=0.5).mean()))  # empty images score 1 under 'match'
    split = threshold_table({'train': (p[:2], t[:2]), 'val': (p[2:4], t[2:4]), 'test': (p[4:], t[4:])})
    assert len(split) == 18 and split.columns[:2] == ['split', 'threshold']
    assert [r['split'] for r in split.rows if r['threshold'] == 'all-background'] == ['train', 'val', 'test']
    assert len(threshold_table(p, t, baseline=False)) == 5
    streamed = threshold_table(iter(batches))  # a stream of batches is read once for both the sweep and the baseline
    assert [r['dice'] for r in streamed.rows] == pytest.approx([r['dice'] for r in tab.rows])
    assert '| split | threshold |' in split.to_markdown() and 'test' in repr(split)
    with pytest.raises(ValueError, match="average='pooled' is not valid"): threshold_table(p, t, average='pooled')
    with pytest.raises(ValueError, match="target is required"): sweep_thresholds(p)
    with pytest.raises(ValueError, match="strictly increasing"): threshold_table(p, t, thresholds=(0.5, 0.5))
    with pytest.raises(ValueError, match="NaN"): sweep_thresholds(p * float('nan'), t)


def test_numpy_input():
    p, t = _data()
    a, b = sweep_thresholds(p.numpy(), t.numpy()), sweep_thresholds(p, t)
    np.testing.assert_allclose(a.micro['iou'], b.micro['iou'])


def test_curves_against_sklearn():
    sk = pytest.importorskip('sklearn.metrics', reason='scikit-learn is needed for the curve checks')
    p, t = _data(n=3, shape=(20, 20), seed=2, decimals=None)
    sw = sweep_thresholds(p, t, thresholds=1001)
    y, s = t.flatten().numpy(), p.flatten().numpy()
    assert roc_curve(sw)['auc'] == pytest.approx(sk.roc_auc_score(y, s), abs=2e-3)
    assert pr_curve(sw)['auc'] == pytest.approx(sk.average_precision_score(y, s), abs=2e-2)
    fpr, tpr, thr = sk.roc_curve(y, s, drop_intermediate=False)
    # at a threshold of the grid, our point equals the counts above it
    roc = roc_curve(sw)
    k = 500
    assert roc['tpr'][k] == pytest.approx(((s >= np.float32(0.5)) & y).sum() / y.sum())


def test_select_threshold_criteria():
    p, t = _data(n=5, seed=4, decimals=None)
    sw = sweep_thresholds(p, t)
    for crit, name in (('f1', 'dice'), ('dice', 'dice'), ('iou', 'iou'), ('gmean', 'gmean'), ('youden', 'youden')):
        thr = select_threshold(sw, criterion=crit)
        assert sw.at(thr)[name] == pytest.approx(np.nanmax(sw.micro[name])) and thr.score == pytest.approx(np.nanmax(sw.micro[name]))
    thr = select_threshold(p, t, criterion='dice', average='mean')
    assert sw.at(thr, 'mean')['dice'] == pytest.approx(sw.mean['dice'].max())
    cost = select_threshold(sw, criterion='cost', fn_cost=10, fp_cost=1)
    c = sw.counts; total = 10 * c.fn.double() + c.fp.double()
    assert float(total[int(round(float(cost) * 100))]) == float(total.min())
    cheap_fp = select_threshold(sw, criterion='cost', fn_cost=1, fp_cost=10)
    assert float(cheap_fp) > float(cost)  # expensive false positives push the threshold up
    s80 = select_threshold(sw, criterion='sensitivity_at', min_sensitivity=0.8)
    assert sw.at(s80)['sensitivity'] >= 0.8 and (float(s80) == 1.0 or sw.at(float(s80) + 0.01)['sensitivity'] < 0.8)
    with pytest.raises(ValueError, match="min_sensitivity"): select_threshold(sw, criterion='sensitivity_at', min_sensitivity=1.5)


def test_ties_go_to_the_median():
    # perfectly separated data: every threshold in (0.2, 0.8] is perfect
    p = torch.tensor([0.2, 0.2, 0.8, 0.8]).view(1, 1, 2, 2); t = p > 0.5
    thr = select_threshold(p, t, criterion='dice')
    assert float(thr) == pytest.approx(0.5)


def test_warning_when_scored_on_selection_data():
    p, t = _data(n=6, seed=1)
    thr = select_threshold(p[:3], t[:3], criterion='youden')
    with pytest.warns(UserWarning, match="chosen by 'youden' on this same data"): score_threshold(thr, p[:3], t[:3])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        r = score_threshold(thr, p[3:], t[3:])
        score_threshold(float(thr), p[:3], t[:3])  # a plain float carries no history: no warning
    assert r['dice'] == pytest.approx(float(M.dice(p[3:].flatten(), t[3:].flatten(), threshold=float(thr))))
    rep = threshold_report((p[:3], t[:3]), (p[3:], t[3:]), criteria=('gmean', 'f1'))
    assert [(r['criterion'], r['split']) for r in rep.rows] == [('gmean', 'val'), ('gmean', 'test'), ('f1', 'val'), ('f1', 'test')]
    assert rep.rows[0]['threshold'] == rep.rows[1]['threshold']


def test_inexact_grid_arithmetic_falls_back_to_lookup():
    "Grids whose thresholds `lo + g/inv` do not round to the stored values use the threshold table; still exact."
    grids = [np.linspace(lo, hi, n) for lo in (0.05, 0.1, 0.15, 0.3) for hi in (0.7, 0.9, 0.95) for n in (17, 33, 81)]
    inexact = [g for g in grids if not T._grid_params(threshold_grid(g), torch.float32)[2]]
    assert inexact, "expected at least one grid whose arithmetic differs from its float32 values"
    p, t = _data(decimals=3)
    _check_exact(p, t, inexact[0])


def test_torch_path_equals_numpy_path():
    "The torch kernel (used on GPUs) gives the same histograms as the NumPy one."
    p, t = _data(n=3, decimals=2)
    p2, t2 = p.flatten(1), t.flatten(1)
    for grid in (threshold_grid(101), threshold_grid([0.1, 0.35, 0.9]), threshold_grid(np.linspace(0.05, 0.95, 81))):
        params = T._grid_params(grid, p.dtype)
        thr_c = grid.to(p.dtype)
        a = T._chunk_hist(p2.numpy(), t2.numpy(), thr_c.numpy(), params)
        b = T._chunk_hist(p2, t2, thr_c, params)
        assert torch.equal(a, b)


def test_case_level_matches_accumulator():
    from segcourse.metrics.accumulate import MetricAccumulator
    p, t = _data(n=9, seed=6)
    t[4] = False
    cases = ['a', 'a', 'b', 'b', 'b', 'c', 'd', 'd', 'd']
    sw = sweep_thresholds(p, t, case_id=cases)
    streamed = sweep_thresholds([(p[:4], t[:4], cases[:4]), (p[4:], t[4:], cases[4:])])
    assert sw.n_cases == 4 and streamed.n_cases == 4
    for thr in (0.2, 0.5, 0.8):
        acc = MetricAccumulator(('dice', 'sensitivity', 'gmean'), threshold=thr).update(p, t, case_id=cases)
        for m in ('dice', 'sensitivity', 'gmean'):
            assert sw.at(thr, 'case')[m] == pytest.approx(acc.compute('case')[m])
            assert streamed.at(thr, 'case')[m] == pytest.approx(acc.compute('case')[m])
    tab = threshold_table(p, t, average='case', case_id=cases)
    assert tab.rows[3]['dice'] == pytest.approx(sw.at(0.5, 'case')['dice'])
    thr = select_threshold(p, t, criterion='dice', average='case', case_id=cases)
    assert sw.at(thr, 'case')['dice'] == pytest.approx(np.nanmax(sw.case['dice']))
    with pytest.raises(ValueError, match="needs case ids"): sweep_thresholds(p, t).values('case')
    with pytest.raises(ValueError, match="case_id has 2 entries"): sweep_thresholds(p, t, case_id=['a', 'b'])
