"Uncertainty metrics (GED by a pixel loop, Hungarian IoU by brute force), calibration (ECE, near region, temperature) and conformal risk control (guarantees over 100 splits, brute-force threshold), with bad-input matrices."
from itertools import permutations

import numpy as np
import pytest, torch

from segcourse.metrics.uncertainty import (annotator_disagreement, generalized_energy_distance, hungarian_iou,
    pairwise_confusion, referral_curve, uncertainty_error_overlap, uncertainty_rank_correlation)

torch.set_num_threads(1)

def _iou_ref(a:np.ndarray, b:np.ndarray) -> float:
    "IoU of two boolean masks by plain NumPy; two empty masks have IoU 1."
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union

def _ged_ref(s:np.ndarray, y:np.ndarray) -> float:
    "Squared GED of one image from (S,H,W) and (A,H,W) masks, all ordered pairs, by loops."
    d = lambda xs, ys: np.mean([1 - _iou_ref(x, z) for x in xs for z in ys])
    return 2 * d(s, y) - d(s, s) - d(y, y)

def _random_sets(seed, n=5, S=6, A=4, size=12, empty_share=0.3):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(S, n, 1, size, size, generator=g)
    ann = (torch.rand(n, A, size, size, generator=g) > 0.6).float()
    ann[torch.rand(n, A, generator=g) < empty_share] = 0  # some annotators draw nothing
    probs[:, torch.rand(n, generator=g) < empty_share] *= 0.4  # some images with all samples empty
    return probs, ann

@pytest.mark.parametrize('seed', range(4))
def test_ged_matches_loop(seed):
    probs, ann = _random_sets(seed)
    ged = generalized_energy_distance(probs, ann, threshold=0.5)
    s, y = (probs >= 0.5)[:, :, 0].numpy(), ann.numpy().astype(bool)
    ref = [_ged_ref(s[:, i], y[i]) for i in range(len(y))]
    np.testing.assert_allclose(ged.numpy(), ref, atol=1e-12)

def test_ged_zero_and_positive():
    probs, ann = _random_sets(9, S=4)
    as_samples = ann.transpose(0, 1)[:, :, None]
    assert torch.allclose(generalized_energy_distance(as_samples, ann), torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(generalized_energy_distance(as_samples[[2, 0, 3, 1]], ann), torch.zeros(5, dtype=torch.float64))
    assert (generalized_energy_distance(probs, ann) >= -1e-12).all()  # an energy distance is never negative

@pytest.mark.parametrize('S,A', [(3, 3), (2, 4), (4, 2), (5, 3), (1, 4)])
def test_hungarian_brute_force(S, A):
    probs, ann = _random_sets(S * 10 + A, n=4, S=S, A=A, size=6)
    got = hungarian_iou(probs, ann).numpy()
    s, y = (probs >= 0.5)[:, :, 0].numpy(), ann.numpy().astype(bool)
    k = max(S, A)
    for i in range(len(y)):
        iou = np.array([[_iou_ref(s[r % S, i], y[i, c % A]) for c in range(k)] for r in range(k)])
        best = max(iou[np.arange(k), list(p)].mean() for p in permutations(range(k)))
        assert got[i] == pytest.approx(best, abs=1e-12)

def test_disagreement_loop_and_identical():
    _, ann = _random_sets(3, A=5)
    y = ann.numpy().astype(bool)
    ref = [np.mean([1 - _iou_ref(y[i, a], y[i, b]) for a in range(5) for b in range(a + 1, 5)]) for i in range(len(y))]
    np.testing.assert_allclose(annotator_disagreement(ann).numpy(), ref, atol=1e-12)
    assert (annotator_disagreement(ann[:, [1, 1, 1]]) == 0).all()

def test_pairwise_confusion_counts_and_chunks():
    _, ann = _random_sets(5, n=7)
    c, c2 = pairwise_confusion(ann), pairwise_confusion(ann, ann, chunk=3)
    for x, x2 in zip(c, c2): assert torch.equal(x, x2)
    y = ann.flatten(2).bool()
    assert torch.equal(c.tp[2, 1, 3], (y[2, 1] & y[2, 3]).sum())
    assert torch.equal(c.tp + c.fp + c.fn + c.tn, torch.full_like(c.tp, y.shape[2]))

BAD = [
    (lambda p, a: generalized_energy_distance(p[:, :, 0], a), ValueError, 'S N 1 H W'),
    (lambda p, a: generalized_energy_distance(p.repeat(1, 1, 2, 1, 1), a), ValueError, 'S N 1 H W'),
    (lambda p, a: generalized_energy_distance(p, a[:3]), ValueError, 'must agree in N, H and W'),
    (lambda p, a: generalized_energy_distance(p, a[..., :5]), ValueError, 'must agree in N, H and W'),
    (lambda p, a: hungarian_iou(p, a[:, :, None]), ValueError, 'N A H W'),
    (lambda p, a: hungarian_iou(p, a * 0.7), ValueError, 'binary'),
    (lambda p, a: hungarian_iou(p[:, :, 0].tolist(), a), ValueError, 'S N 1 H W'),
    (lambda p, a: hungarian_iou('samples', a), TypeError, 'torch.Tensor or numpy'),
    (lambda p, a: annotator_disagreement(a[:, :1]), ValueError, 'at least 2'),
    (lambda p, a: pairwise_confusion(a, a[1:]), ValueError, 'same N'),
    (lambda p, a: uncertainty_rank_correlation([1, 2], [1, 2]), ValueError, '>= 3'),
    (lambda p, a: uncertainty_error_overlap(p[0], a[:, :1], threshold=0.1, fraction=0.1), ValueError, 'not both'),
    (lambda p, a: uncertainty_error_overlap(p[0], a[:, :1], fraction=2), ValueError, 'fraction'),
    (lambda p, a: uncertainty_error_overlap(p[0], a[:, :2]), ValueError, 'N 1 H W'),
    (lambda p, a: referral_curve(p[0], p[0], a[:, :1], level='voxel'), ValueError, 'level'),
    (lambda p, a: referral_curve(p[0], p[0], a[:, :1], referred='drop'), ValueError, 'referred'),
    (lambda p, a: referral_curve(p[0], p[0, :2], a[:, :1]), ValueError, 'pixel-level uncertainty'),
    (lambda p, a: referral_curve(p[0], p[0, :3], a[:, :1], level='image'), ValueError, 'image-level'),
    (lambda p, a: referral_curve(p[0], p[0], a[:, :1], fractions=[0, 1.5]), ValueError, 'fractions'),
]

@pytest.mark.parametrize('i', range(len(BAD)))
def test_bad_inputs(i):
    f, err, msg = BAD[i]
    probs, ann = _random_sets(0)
    with pytest.raises(err, match=msg): f(probs, ann)

def test_referral_random_vs_oracle():
    "An uncertainty equal to the error map beats a random one, at both levels."
    probs, ann = _random_sets(1, n=8, size=16)
    p, t = probs[0], ann[:, :1]
    err = ((p >= 0.5) != t.bool()).float()
    rnd = torch.rand(err.shape, generator=torch.Generator().manual_seed(0))
    for level in ('pixel', 'image'):
        good, bad = (referral_curve(p, u, t, level=level) for u in (err, rnd))
        assert good.dice[0] == bad.dice[0] and good.auc > bad.auc
    assert referral_curve(p, err, t, fractions=[0, err.mean().item()]).dice[-1] == pytest.approx(1.0)


# --- calibration ---------------------------------------------------------------------------------
import math
from scipy import ndimage as ndi
from scipy.optimize import minimize_scalar

from segcourse.metrics import (
    apply_temperature, brier_score, ece, fit_temperature, near_lesion, nll, reliability_diagram)
from segcourse.metrics.conformal import (calibrate_fdr, calibrate_fnr, conformal_masks, empirical_fnr, image_fdr, image_fnr)

def _ece_ref(p, y, n_bins):
    p, y = np.asarray(p, float).ravel(), np.asarray(y, float).ravel()
    total = 0.
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (p >= lo) & ((p < hi) if b < n_bins - 1 else (p <= hi))
        if m.any(): total += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return total

def _calib_data(seed, n=6, size=24):
    g = torch.Generator().manual_seed(seed)
    t = torch.zeros(n, 1, size, size)
    for i in range(n - 1): t[i, 0, 4 + i:10 + 2 * i, 6:12 + i] = 1  # the last image has no lesion
    p = torch.sigmoid(4 * (2 * t - 1) + 2 * torch.randn(t.shape, generator=g))
    return p, t

@pytest.mark.parametrize('n_bins', [1, 7, 15])
def test_ece_matches_reference(n_bins):
    p, t = _calib_data(n_bins)
    assert ece(p, t, n_bins=n_bins) == pytest.approx(_ece_ref(p, t, n_bins), abs=1e-12)
    r = reliability_diagram(p, t, n_bins=n_bins)
    assert r.counts.sum() == p.numel()

@pytest.mark.parametrize('radius', [0, 2, 5])
def test_near_region_matches_dilation(radius):
    p, t = _calib_data(1)
    fg = ((p >= 0.5) | (t > 0)).numpy()[:, 0]
    ref = np.stack([ndi.binary_dilation(f, np.ones((2 * radius + 1,) * 2), iterations=1) if f.any() else f for f in fg])
    assert np.array_equal(near_lesion(p, t, radius)[:, 0].numpy(), ref)
    keep = torch.from_numpy(ref)[:, None]
    assert ece(p, t, region='near', radius=radius) == pytest.approx(_ece_ref(p[keep], t[keep], 15), abs=1e-12)
    assert brier_score(p, t, region='near', radius=radius) == pytest.approx(float(((p[keep] - t[keep]) ** 2).mean()), abs=1e-6)

def test_temperature_matches_scalar_search():
    p, t = _calib_data(3, n=4)
    z = torch.logit(p.double()) * 2.5  # overconfident
    T = fit_temperature(z, t)
    f = lambda lt: torch.nn.functional.binary_cross_entropy_with_logits(z / math.exp(lt), t.double()).item()
    ref = math.exp(minimize_scalar(f, bounds=(-3, 3), method='bounded', options={'xatol': 1e-8}).x)
    assert T == pytest.approx(ref, rel=1e-4)
    assert nll(apply_temperature(z, T), t) < nll(torch.sigmoid(z), t)
    assert torch.equal(apply_temperature(z, T) >= 0.5, torch.sigmoid(z) >= 0.5)  # decisions unchanged

CALIB_BAD = [
    (lambda p, t: ece(p, t[:2]), ValueError, 'same shape'),
    (lambda p, t: ece(p * 2, t), ValueError, r'\[0, 1\]'),
    (lambda p, t: ece(p, t * 0.5), ValueError, 'binary'),
    (lambda p, t: ece(p, t, region='lesion'), ValueError, 'region'),
    (lambda p, t: ece(p[:, 0], t[:, 0], region='near'), ValueError, 'N 1 H W'),
    (lambda p, t: ece(p, t, region='near', radius=-1), ValueError, 'radius'),
    (lambda p, t: ece(p, t, n_bins=2.5), ValueError, 'n_bins'),
    (lambda p, t: ece(p.bool(), t), TypeError, 'real numbers'),
    (lambda p, t: ece('p', t), TypeError, 'torch.Tensor'),
    (lambda p, t: nll(p.masked_fill(t > 0, math.nan), t), ValueError, 'non-finite'),
    (lambda p, t: brier_score(p[:0], t[:0]), ValueError, 'empty'),
    (lambda p, t: reliability_diagram(p, t, region='near', threshold=2.), ValueError, 'no pixels'),
    (lambda p, t: fit_temperature(p, t, inputs='logit'), ValueError, 'inputs'),
    (lambda p, t: fit_temperature(p * 3, t, inputs='probs'), ValueError, r'\[0, 1\]'),
    (lambda p, t: apply_temperature(p, 0.), ValueError, 'temperature'),
    (lambda p, t: apply_temperature(p, True), ValueError, 'temperature'),
]

@pytest.mark.parametrize('i', range(len(CALIB_BAD)))
def test_calibration_bad_inputs(i):
    f, err, msg = CALIB_BAD[i]
    p, t = _calib_data(0)
    t[-1] = 0; p[-1] = 0.1  # the last image: no lesion, nothing predicted
    if 'no pixels' in msg: p, t = p[-1:], t[-1:]
    with pytest.raises(err, match=msg): f(p, t)


# --- conformal -----------------------------------------------------------------------------------
def _conformal_data(n=300, size=12, seed=0):
    "Lesions of random size and position (a fifth of the images without), probabilities of varying quality."
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    c = torch.rand(n, 2, 1, 1, generator=g) * size
    r = torch.rand(n, 1, 1, generator=g) * size / 3 * (torch.rand(n, 1, 1, generator=g) > 0.2)
    t = ((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2 < r ** 2)[:, None]
    quality = torch.rand(n, 1, 1, 1, generator=g) * 3  # some images much harder than others
    p = torch.sigmoid(quality * (2 * t.float() - 1) + 1.5 * torch.randn(n, 1, size, size, generator=g) - 0.5)
    return p, t

def test_fnr_guarantee_over_splits():
    "Mean test FNR over 100 random halves at most alpha + 0.01 (Monte Carlo tolerance), and not far below."
    p, t = _conformal_data()
    for alpha in (0.1, 0.2):
        fnrs = []
        for seed in range(100):
            i = torch.randperm(len(p), generator=torch.Generator().manual_seed(seed))
            lam = calibrate_fnr(p[i[:150]], t[i[:150]], alpha)
            fnrs.append(empirical_fnr(p[i[150:]], t[i[150:]], lam))
        assert alpha - 0.05 < np.mean(fnrs) <= alpha + 0.01, (alpha, np.mean(fnrs))

def test_fdr_and_tolerance_guarantees_over_splits():
    p, t = _conformal_data(seed=1)
    fdrs, over = [], []
    for seed in range(100):
        i = torch.randperm(len(p), generator=torch.Generator().manual_seed(seed))
        cal, test = i[:150], i[150:]
        fdrs.append(image_fdr(p[test], t[test], calibrate_fdr(p[cal], t[cal], 0.2)).mean().item())
        f = image_fnr(p[test], t[test], calibrate_fnr(p[cal], t[cal], 0.1, tolerance=0.2))
        over.append((f[~f.isnan()] > 0.2).float().mean().item())
    assert np.mean(fdrs) <= 0.2 + 0.01 and np.mean(over) <= 0.1 + 0.01, (np.mean(fdrs), np.mean(over))

@pytest.mark.parametrize('empty', ['exclude', 'zero'])
def test_calibrate_fnr_matches_brute_force(empty):
    "The threshold is the largest candidate passing the rule, by scanning every probability."
    p, t = _conformal_data(n=30, size=6, seed=2)
    alpha = 0.15
    lam = calibrate_fnr(p, t, alpha, empty=empty)
    n = int((t.flatten(1).any(1)).sum()) if empty == 'exclude' else len(p)
    ok = lambda x: n / (n + 1) * empirical_fnr(p, t, x, empty=empty) + 1 / (n + 1) <= alpha + 1e-12
    cands = sorted(set(p[t].tolist()))
    passing = [x for x in cands if ok(x)]
    assert ok(lam) and lam == max(passing)
    above = [x for x in cands if x > lam]
    assert not above or not ok(above[0])

def test_fnr_monotone_and_masks_nested():
    p, t = _conformal_data(n=40, seed=3)
    curve = torch.stack([image_fnr(p, t, x) for x in np.linspace(0, 1, 41)])
    lesion = t.flatten(1).any(1)
    assert (curve[:, lesion].diff(dim=0) >= 0).all() and curve[:, ~lesion].isnan().all()
    sets = conformal_masks(p, 0.2, 0.7)  # given in either order
    assert (sets.lower <= sets.upper).all() and torch.equal(sets.lower, p >= 0.7) and torch.equal(sets.upper, p >= 0.2)

CONF_BAD = [
    (lambda p, t: calibrate_fnr(p, t, alpha=0), ValueError, 'alpha'),
    (lambda p, t: calibrate_fnr(p, t, alpha=True), ValueError, 'alpha'),
    (lambda p, t: calibrate_fnr(p, t, empty='drop'), ValueError, 'empty'),
    (lambda p, t: calibrate_fnr(p, t, tolerance=1.), ValueError, 'tolerance'),
    (lambda p, t: calibrate_fnr(p[:, 0], t[:, 0]), ValueError, 'N 1 H W'),
    (lambda p, t: calibrate_fnr(p, t[1:]), ValueError, 'same shape'),
    (lambda p, t: calibrate_fnr(p * 2, t), ValueError, r'\[0, 1\]'),
    (lambda p, t: calibrate_fnr(t, t), TypeError, 'floating-point'),
    (lambda p, t: calibrate_fnr(p, t.float() * 0.5), ValueError, 'binary'),
    (lambda p, t: calibrate_fnr(p.tolist(), t), TypeError, 'torch.Tensor'),
    (lambda p, t: calibrate_fdr(p, t, thresholds=[0.5, 0.2]), ValueError, 'increasing'),
    (lambda p, t: empirical_fnr(p, t, 0.5, empty='nan'), ValueError, 'empty'),
]

@pytest.mark.parametrize('i', range(len(CONF_BAD)))
def test_conformal_bad_inputs(i):
    f, err, msg = CONF_BAD[i]
    p, t = _conformal_data(n=10)
    with pytest.raises(err, match=msg): f(p, t)

def test_too_few_calibration_images_warns():
    p, t = _conformal_data(n=20, seed=4)
    with pytest.warns(UserWarning, match='calibration images'): assert calibrate_fnr(p[:5], t[:5], 0.1) == 0.
    with pytest.warns(UserWarning, match='calibration images'): assert calibrate_fdr(p[:5], t[:5], 0.1) == math.inf
