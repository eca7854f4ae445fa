"""Overlap and count metrics: hand-computed values, the empty-mask policy for every metric, input
checks, NumPy/torch parity, and cross-checks against scikit-learn on random masks."""
import math

import numpy as np
import pytest
import torch

from segcourse import metrics as M
from segcourse.metrics import COUNT_METRICS, from_counts, Confusion, confusion

torch.set_num_threads(1)
FUNCS = {name: getattr(M, name) for name in COUNT_METRICS}
H_T1 = -(1/16 * math.log(1/16) + 15/16 * math.log(15/16))  # entropy of a 1-voxel mask in 4x4


def _masks(case):
    "4x4 (pred, target) pairs for the empty-mask cases."
    z = np.zeros((4, 4), bool)
    one = z.copy(); one[1, 2] = True
    border = z.copy(); border[0, :] = True
    full = np.ones((4, 4), bool)
    return {'both_empty': (z, z), 'pred_empty': (z, one), 'target_empty': (one, z), 'single_voxel': (one, one),
            'border': (border, border), 'full': (full, full), 'full_vs_empty': (full, z), 'empty_vs_full': (z, full)}[case]


# expected values under empty='match'; for metrics not listed in a case the value is computed by formula
EXPECTED_MATCH = {
    'both_empty': dict(dice=1, iou=1, sensitivity=1, specificity=1, precision=1, npv=1, accuracy=1, balanced_accuracy=1,
                       volume_similarity=1, relative_volume_difference=0, rand_index=1, adjusted_rand_index=1,
                       mutual_information=0, variation_of_information=0, cohen_kappa=1, mcc=1, gmean=1, youden=1),
    'pred_empty': dict(dice=0, iou=0, sensitivity=0, specificity=1, precision=0, npv=15/16, accuracy=15/16, balanced_accuracy=0.5,
                       volume_similarity=0, relative_volume_difference=-1, rand_index=105/120, adjusted_rand_index=0,
                       mutual_information=0, variation_of_information=H_T1, cohen_kappa=0, mcc=0, gmean=0, youden=0),
    'target_empty': dict(dice=0, iou=0, sensitivity=0, specificity=15/16, precision=0, npv=1, accuracy=15/16,
                         balanced_accuracy=15/32, volume_similarity=0, relative_volume_difference=math.inf,
                         rand_index=105/120, adjusted_rand_index=0, mutual_information=0, variation_of_information=H_T1,
                         cohen_kappa=0, mcc=0, gmean=0, youden=-1/16),
    'single_voxel': dict(dice=1, iou=1, sensitivity=1, specificity=1, precision=1, npv=1, accuracy=1, balanced_accuracy=1,
                         volume_similarity=1, relative_volume_difference=0, rand_index=1, adjusted_rand_index=1,
                         mutual_information=H_T1, variation_of_information=0, cohen_kappa=1, mcc=1, gmean=1, youden=1),
    'full': dict(dice=1, iou=1, sensitivity=1, specificity=1, precision=1, npv=1, accuracy=1, balanced_accuracy=1,
                 volume_similarity=1, relative_volume_difference=0, rand_index=1, adjusted_rand_index=1,
                 mutual_information=0, variation_of_information=0, cohen_kappa=1, mcc=1, gmean=1, youden=1),
    'full_vs_empty': dict(dice=0, iou=0, sensitivity=0, specificity=0, precision=0, npv=0, accuracy=0, balanced_accuracy=0,
                          volume_similarity=0, relative_volume_difference=math.inf, rand_index=1, adjusted_rand_index=1,
                          mutual_information=0, variation_of_information=0, cohen_kappa=0, mcc=0, gmean=0, youden=-1),
    'empty_vs_full': dict(dice=0, iou=0, sensitivity=0, specificity=0, precision=0, npv=0, accuracy=0, balanced_accuracy=0,
                          volume_similarity=0, relative_volume_difference=-1, rand_index=1, adjusted_rand_index=1,
                          mutual_information=0, variation_of_information=0, cohen_kappa=0, mcc=0, gmean=0, youden=-1),
}
EXPECTED_MATCH['border'] = dict(EXPECTED_MATCH['single_voxel'], mutual_information=-(0.25*math.log(0.25) + 0.75*math.log(0.75)))

# which metrics are 0/0 (undefined) in each case: these become NaN under empty='nan'
UNDEFINED = {
    'both_empty': {'dice', 'iou', 'sensitivity', 'precision', 'balanced_accuracy', 'volume_similarity',
                   'relative_volume_difference', 'adjusted_rand_index', 'cohen_kappa', 'mcc', 'gmean', 'youden'},
    'pred_empty': {'precision', 'mcc'},
    'target_empty': {'sensitivity', 'relative_volume_difference', 'mcc', 'balanced_accuracy', 'gmean', 'youden'},
    'single_voxel': set(), 'border': set(),
    'full': {'specificity', 'npv', 'adjusted_rand_index', 'cohen_kappa', 'mcc', 'balanced_accuracy', 'gmean', 'youden'},
    'full_vs_empty': {'sensitivity', 'npv', 'relative_volume_difference', 'adjusted_rand_index', 'mcc',
                      'balanced_accuracy', 'gmean', 'youden'},
    'empty_vs_full': {'specificity', 'precision', 'adjusted_rand_index', 'mcc', 'balanced_accuracy', 'gmean', 'youden'},
}


@pytest.mark.parametrize('case', list(EXPECTED_MATCH))
@pytest.mark.parametrize('name', COUNT_METRICS)
def test_empty_policy_every_metric(case, name):
    pred, target = _masks(case)
    f = FUNCS[name]
    expected = EXPECTED_MATCH[case][name]
    got = float(f(pred, target))
    assert got == pytest.approx(expected, abs=1e-12), (case, name, got, expected)
    got_nan = float(f(pred, target, empty='nan'))
    if name in UNDEFINED[case]:
        assert math.isnan(got_nan), (case, name, got_nan)
        if name not in ('balanced_accuracy', 'gmean', 'youden', 'volume_similarity'):  # these combine the filled value
            assert float(f(pred, target, empty=-7.0)) == -7.0
    else:
        assert got_nan == pytest.approx(expected, abs=1e-12), (case, name, got_nan)


def test_empty_number_policy():
    z = np.zeros((4, 4), bool)
    for name in ('dice', 'iou', 'sensitivity', 'precision', 'mcc', 'cohen_kappa', 'volume_similarity'):
        assert float(FUNCS[name](z, z, empty=0.25)) == (0.75 if name == 'volume_similarity' else 0.25)
    with pytest.raises(ValueError, match="empty='zero' is not valid"): M.dice(z, z, empty='zero')


def test_hand_values_4x4():
    target = np.zeros((4, 4), bool); target[:, :2] = True
    pred = np.zeros((4, 4), bool); pred[:2] = True
    assert [int(x) for x in confusion(pred, target)] == [4, 4, 4, 4]
    assert float(M.dice(pred, target)) == 0.5 and float(M.iou(pred, target)) == pytest.approx(1/3)
    # 3 of 4 foreground pixels found, 1 false positive among 12 background pixels
    t = np.zeros((4, 4), bool); t[0, :] = True
    p = np.zeros((4, 4), bool); p[0, :3] = True; p[3, 3] = True
    assert [int(x) for x in confusion(p, t)] == [3, 1, 1, 11]
    assert float(M.sensitivity(p, t)) == 0.75 and float(M.specificity(p, t)) == 11/12
    assert float(M.precision(p, t)) == 0.75 and float(M.npv(p, t)) == 11/12
    assert float(M.dice(p, t)) == 0.75 and float(M.iou(p, t)) == 0.6 and float(M.accuracy(p, t)) == 14/16
    assert float(M.volume_similarity(p, t)) == 1.0 and float(M.relative_volume_difference(p, t)) == 0.0
    assert float(M.youden(p, t)) == pytest.approx(0.75 + 11/12 - 1)
    assert float(M.gmean(p, t)) == pytest.approx(math.sqrt(0.75 * 11/12))


def test_batch_3d_numpy_torch_parity():
    rng = np.random.default_rng(0)
    p = rng.random((3, 1, 4, 5, 6)) > 0.5; t = rng.random((3, 1, 4, 5, 6)) > 0.6
    for name, f in FUNCS.items():
        a, b = f(p, t), f(torch.from_numpy(p), torch.from_numpy(t))
        assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor) and a.shape == (3,) and b.shape == (3,)
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-12)
        # one item of a batch equals the same item alone (3D, unbatched)
        assert float(f(p[1, 0], t[1, 0])) == pytest.approx(float(a[1]), rel=1e-12)
    # integer and float masks are accepted when they are 0/1
    assert float(M.dice(p[0, 0].astype(np.uint8), t[0, 0].astype(np.float32))) == pytest.approx(float(M.dice(p[0, 0], t[0, 0])))


def test_threshold_rule():
    probs = torch.tensor([[0.2, 0.5], [0.7, 0.49]])
    target = torch.tensor([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match="explicit threshold"): M.dice(probs, target)
    assert float(M.dice(probs, target, threshold=0.5)) == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))  # 0.5 >= 0.5 counts
    with pytest.raises(ValueError, match="target has values other than 0 and 1"): M.dice(target, probs)
    with pytest.raises(TypeError, match="already a boolean"): M.dice(target.bool(), target, threshold=0.5)
    with pytest.raises(TypeError, match="threshold must be a number"): M.dice(probs, target, threshold='0.5')
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"): M.dice('abc', target)
    with pytest.raises(ValueError, match="same shape"): M.dice(probs, target[0], threshold=0.5)
    with pytest.raises(ValueError, match="channels"): M.dice(torch.zeros(2, 2, 3, 3), torch.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match="expected"): M.dice(torch.zeros(1, 1, 1, 1, 1, 1), torch.zeros(1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="did you mean 'dice'"): from_counts(Confusion(1, 0, 0, 1), 'dce')


def test_threshold_exact_float32_ties():
    # a float32 probability equal to float32(0.3) is foreground at threshold 0.3
    p = torch.tensor([0.3, 0.29999998, 0.30000001], dtype=torch.float32)
    c = confusion(p, torch.tensor([1, 1, 1]), threshold=0.3)
    assert int(c.tp) == int((p >= torch.tensor(0.3, dtype=torch.float32)).sum())


def test_confusion_sum_micro():
    rng = np.random.default_rng(1)
    p = rng.random((5, 1, 8, 8)) > 0.5; t = rng.random((5, 1, 8, 8)) > 0.5
    micro = confusion(p, t).sum()
    assert [int(x) for x in micro] == [int(x) for x in confusion(p.ravel(), t.ravel())]
    assert float(from_counts(micro, 'dice')) == pytest.approx(float(M.dice(p.ravel(), t.ravel())))


# ----------------------------------------------------------------------------- scikit-learn cross-checks
sk = pytest.importorskip('sklearn.metrics', reason='scikit-learn is needed for the cross-checks')


@pytest.mark.parametrize('seed', range(4))
def test_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 6
    p = rng.random((n, 1, 12, 13)) < rng.uniform(0.05, 0.6, (n, 1, 1, 1))
    t = rng.random((n, 1, 12, 13)) < rng.uniform(0.05, 0.6, (n, 1, 1, 1))
    c = confusion(p, t)
    for i in range(n):
        y, yhat = t[i].ravel(), p[i].ravel()
        tn, fp, fn, tp = sk.confusion_matrix(y, yhat, labels=[0, 1]).ravel()
        assert (int(c.tp[i]), int(c.fp[i]), int(c.fn[i]), int(c.tn[i])) == (tp, fp, fn, tn)
    checks = {'accuracy': sk.accuracy_score, 'sensitivity': sk.recall_score, 'precision': sk.precision_score,
              'dice': sk.f1_score, 'iou': sk.jaccard_score, 'balanced_accuracy': sk.balanced_accuracy_score,
              'cohen_kappa': sk.cohen_kappa_score, 'mcc': sk.matthews_corrcoef, 'rand_index': sk.rand_score,
              'adjusted_rand_index': sk.adjusted_rand_score, 'mutual_information': sk.mutual_info_score}
    for name, ref in checks.items():
        ours = FUNCS[name](p, t)
        theirs = [ref(t[i].ravel(), p[i].ravel()) for i in range(n)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12, err_msg=name)
    # variation of information = H(P) + H(T) - 2 MI (sklearn entropies via mutual_info of a labeling with itself)
    voi = [sk.mutual_info_score(t[i].ravel(), t[i].ravel()) + sk.mutual_info_score(p[i].ravel(), p[i].ravel())
           - 2 * sk.mutual_info_score(t[i].ravel(), p[i].ravel()) for i in range(n)]
    np.testing.assert_allclose(M.variation_of_information(p, t), voi, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('rounding', [None, 1, 2])
def test_roc_auc_ap_against_sklearn(seed, rounding):
    rng = np.random.default_rng(seed)
    s = rng.random((4, 1, 10, 11)); t = rng.random((4, 1, 10, 11)) < s * 0.8
    if rounding: s = np.round(s, rounding)  # ties
    np.testing.assert_allclose(M.roc_auc(s, t), [sk.roc_auc_score(t[i].ravel(), s[i].ravel()) for i in range(4)], rtol=1e-9)
    np.testing.assert_allclose(M.average_precision(s, t), [sk.average_precision_score(t[i].ravel(), s[i].ravel()) for i in range(4)], rtol=1e-9)
    np.testing.assert_allclose(M.roc_auc(torch.from_numpy(s).float(), torch.from_numpy(t)).numpy(),
                               [sk.roc_auc_score(t[i].ravel(), s[i].astype(np.float32).ravel()) for i in range(4)], rtol=1e-6)


def test_roc_auc_one_class():
    s = np.random.default_rng(0).random((4, 4))
    assert math.isnan(float(M.roc_auc(s, np.zeros((4, 4))))) and float(M.average_precision(s, np.ones((4, 4)), empty=1.0)) == 1.0


def test_summarize():
    s = M.summarize(torch.tensor([0.1, 0.9, 0.8, float('nan')]))
    assert s['n'] == 4 and s['n_nan'] == 1 and s['median'] == pytest.approx(0.8) and s['mean'] == pytest.approx(0.6)


@pytest.mark.parametrize('case', ['both_empty', 'pred_empty', 'target_empty', 'single_voxel', 'border', 'full'])
def test_probability_metrics_empty_cases(case):
    "ROC AUC and AP need both classes in the target: else NaN (or the number given), never an error."
    _, target = _masks(case)
    scores = np.linspace(0, 1, 16).reshape(4, 4)
    one_class = target.all() or not target.any()
    for f in (M.roc_auc, M.average_precision):
        v = float(f(scores, target))
        assert math.isnan(v) if one_class else 0 <= v <= 1
        assert float(f(scores, target, empty=0.5)) == (0.5 if one_class else v)
    if case == 'border':  # the top row holds the lowest scores: AUC 0
        assert float(M.roc_auc(scores, target)) == 0.0


def test_get_metric_and_lazy_distance_names():
    for name in M.METRIC_NAMES: assert callable(M.get_metric(name))
    from segcourse.metrics.distance import hd95, nsd
    from segcourse.metrics import distance
    assert hd95 is distance.hd95 and nsd is distance.nsd
    with pytest.raises(AttributeError, match="no attribute 'hd99'"): M.hd99


def test_inputs_that_require_grad():
    "Model outputs straight from a forward pass (requires_grad) are accepted everywhere."
    from segcourse.metrics.thresholds import sweep_thresholds
    from segcourse.metrics.distance import hd95
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    probs = torch.sigmoid(logits); target = torch.rand(2, 1, 6, 6) > 0.5
    assert M.dice(probs, target, threshold=0.5).shape == (2,)
    assert M.roc_auc(probs, target).requires_grad is False
    assert sweep_thresholds(probs, target).micro['dice'].shape == (101,)
    assert hd95(probs, target, threshold=0.5).shape == (2,)
