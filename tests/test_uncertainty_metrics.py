"Uncertainty metrics against slow references: GED by a pixel loop, Hungarian IoU by brute force, bad inputs."
from itertools import permutations

import numpy as np
import pytest, torch

from segcourse.uncertainty_metrics import (annotator_disagreement, generalized_energy_distance, hungarian_iou,
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
