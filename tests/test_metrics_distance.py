"""Distance metrics: hand values, empty-mask cases, spacing, 2D/3D, and peer checks against medpy and
MONAI (skipped with a reason where those are not installed)."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from segcourse.metrics.distance import (DISTANCE_METRICS, assd, distance_metrics, hausdorff, hd95, mahalanobis, masd, nsd,
                                surface, surface_distances)

torch.set_num_threads(1)
FUNCS = dict(hausdorff=hausdorff, hd95=hd95, assd=assd, masd=masd, nsd=nsd)


def _blob(shape, seed, frac=0.35):
    "A smooth random blob (thresholded smoothed noise) filling about `frac` of the box, never empty."
    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.standard_normal(shape), 2)
    m = f > np.quantile(f, 1 - frac)
    return m


def test_surface_matches_scipy_erosion():
    rng = np.random.default_rng(0)
    for shape in [(9, 11), (5, 6, 7)]:
        m = _blob(shape, 1)
        for conn in range(1, len(shape) + 1):
            ref = m ^ ndi.binary_erosion(m, ndi.generate_binary_structure(len(shape), conn))
            np.testing.assert_array_equal(surface(m, conn), ref)


def test_against_brute_force():
    "Directed distances equal brute-force nearest surface voxel distances, with anisotropic spacing."
    p, t = _blob((12, 14), 2), _blob((12, 14), 3)
    sp = np.array([1.5, 0.7])
    dp, dt = surface_distances(p, t, spacing=sp)[0]
    a, b = np.argwhere(surface(p)) * sp, np.argwhere(surface(t)) * sp
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    np.testing.assert_allclose(np.sort(dp), np.sort(d.min(1))); np.testing.assert_allclose(np.sort(dt), np.sort(d.min(0)))
    assert float(hausdorff(p, t, spacing=sp)) == pytest.approx(max(d.min(1).max(), d.min(0).max()))
    assert float(assd(p, t, spacing=sp)) == pytest.approx(np.concatenate([d.min(1), d.min(0)]).mean())
    assert float(masd(p, t, spacing=sp)) == pytest.approx((d.min(1).mean() + d.min(0).mean()) / 2)
    assert float(nsd(p, t, tolerance=1.0, spacing=sp)) == pytest.approx(((d.min(1) <= 1).sum() + (d.min(0) <= 1).sum()) / sum(d.shape))


def test_batch_equals_items_and_torch():
    p = np.stack([_blob((16, 16), s) for s in range(5)])[:, None]; t = np.stack([_blob((16, 16), 10 + s) for s in range(5)])[:, None]
    p[3] = False  # an empty prediction in the batch
    r = distance_metrics(p, t, DISTANCE_METRICS, spacing=(1.0, 2.0))
    rt = distance_metrics(torch.from_numpy(p), torch.from_numpy(t), DISTANCE_METRICS, spacing=(1.0, 2.0))
    for m in DISTANCE_METRICS:
        assert r[m].shape == (5,) and isinstance(rt[m], torch.Tensor)
        np.testing.assert_allclose(r[m], rt[m].numpy())
        for i in range(5): assert float(FUNCS[m](p[i, 0], t[i, 0], spacing=(1.0, 2.0))) == pytest.approx(float(r[m][i]))
    diag = math.sqrt(15**2 + 30**2)
    assert r['hausdorff'][3] == pytest.approx(diag) and r['nsd'][3] == 0


EMPTY_CASES = ['both_empty', 'pred_empty', 'target_empty', 'single_voxel', 'border', 'full', 'full_vs_single']


def _case(name):
    z = np.zeros((5, 6), bool)
    one = z.copy(); one[2, 3] = True
    corner = z.copy(); corner[0, 0] = True
    border = z.copy(); border[:, 0] = True
    full = np.ones_like(z)
    return {'both_empty': (z, z), 'pred_empty': (z, one), 'target_empty': (one, z), 'single_voxel': (one, one),
            'border': (border, border), 'full': (full, full), 'full_vs_single': (full, corner)}[name]


@pytest.mark.parametrize('case', EMPTY_CASES)
@pytest.mark.parametrize('name', list(FUNCS) + ['mahalanobis'])
def test_empty_cases_every_distance(case, name):
    p, t = _case(case)
    f = mahalanobis if name == 'mahalanobis' else FUNCS[name]
    diag = math.sqrt((4 * 2.0) ** 2 + (5 * 1.0) ** 2)
    got = float(f(p, t, spacing=(2.0, 1.0)))
    similarity = name == 'nsd'
    if case == 'both_empty': assert got == (1.0 if similarity else 0.0)
    elif case in ('pred_empty', 'target_empty'):
        assert got == (0.0 if similarity else math.inf if name == 'mahalanobis' else pytest.approx(diag))
        assert math.isnan(float(f(p, t, spacing=(2.0, 1.0), empty='nan')))
        assert float(f(p, t, spacing=(2.0, 1.0), empty=math.inf)) == math.inf
    elif case in ('single_voxel', 'border', 'full'): assert got == (1.0 if similarity else 0.0)
    else:  # full image against one corner voxel: the surface is the image border ring, 18 voxels
        ring = np.argwhere(surface(p)) * [2.0, 1.0]
        far = np.sqrt((ring ** 2).sum(1))
        expected = dict(hausdorff=far.max(), hd95=np.percentile(np.r_[far, 0.0], 95), assd=far.sum() / 19,
                        masd=far.mean() / 2, nsd=(np.sum(far <= 1) + 1) / 19)
        if name == 'mahalanobis': return  # covered by the hand value in the notebook
        assert got == pytest.approx(expected[name])


def test_3d_spacing_and_connectivity():
    p, t = _blob((8, 10, 9), 4), _blob((8, 10, 9), 5)
    for conn in (1, 2, 3):
        dp, dt = surface_distances(p, t, spacing=(2.0, 1.0, 0.5), connectivity=conn)[0]
        assert len(dp) == surface(p, conn).sum() and len(dt) == surface(t, conn).sum()
    # scaling all spacings scales every distance
    assert float(hd95(p, t, spacing=3.0)) == pytest.approx(3 * float(hd95(p, t)))
    with pytest.raises(ValueError, match="3 positive numbers"): hd95(p, t, spacing=(1, 1))
    with pytest.raises(ValueError, match="method='mean' is not valid"): hd95(p, t, method='mean')
    with pytest.raises(ValueError, match="connectivity=4"): hd95(p, t, connectivity=4)


def test_hd95_max_never_below_pooled():
    for s in range(6):
        p, t = _blob((20, 20), s, 0.2), _blob((20, 20), 50 + s, 0.4)
        assert float(hd95(p, t, method='max')) >= float(hd95(p, t, method='pooled')) - 1e-12


def test_probabilities_need_threshold():
    probs = np.random.default_rng(0).random((6, 6)); t = probs > 0.5
    with pytest.raises(ValueError, match="explicit threshold"): hd95(probs, t)
    assert float(hd95(probs, t, threshold=0.5)) == 0.0


# ----------------------------------------------------------------------------- peers
def _pairs():
    "2D and 3D pairs with spacing (as float tuples, which MONAI needs)."
    yield _blob((24, 30), 1), _blob((24, 30), 2), (0.8, 1.3)
    yield _blob((24, 30), 3, 0.1), _blob((24, 30), 4, 0.5), (1.0, 1.0)
    yield _blob((12, 16, 14), 5), _blob((12, 16, 14), 6), (1.0, 1.0, 1.5)
    yield _blob((12, 16, 14), 7, 0.15), _blob((12, 16, 14), 8, 0.3), (2.0, 0.7, 1.1)


def test_medpy():
    mb = pytest.importorskip('medpy.metric.binary', reason='medpy not installed (pip install medpy)')
    for p, t, sp in _pairs():
        assert float(hd95(p, t, spacing=sp)) == pytest.approx(mb.hd95(p, t, voxelspacing=sp), rel=1e-6)
        assert float(assd(p, t, spacing=sp)) == pytest.approx(mb.assd(p, t, voxelspacing=sp), rel=1e-6)
        assert float(hausdorff(p, t, spacing=sp)) == pytest.approx(mb.hd(p, t, voxelspacing=sp), rel=1e-6)
        masd_ref = (mb.asd(p, t, voxelspacing=sp) + mb.asd(t, p, voxelspacing=sp)) / 2
        assert float(masd(p, t, spacing=sp)) == pytest.approx(masd_ref, rel=1e-6)


@pytest.mark.filterwarnings('ignore::FutureWarning')
def test_monai():
    mm = pytest.importorskip('monai.metrics', reason='MONAI not installed (pip install monai)')
    for p, t, sp in _pairs():
        P, T = torch.from_numpy(p)[None, None], torch.from_numpy(t)[None, None]
        ref = mm.HausdorffDistanceMetric(percentile=95)(P, T, spacing=sp).item()
        assert float(hd95(p, t, spacing=sp, method='max')) == pytest.approx(ref, rel=1e-6)
        ref = mm.HausdorffDistanceMetric()(P, T, spacing=sp).item()
        assert float(hausdorff(p, t, spacing=sp)) == pytest.approx(ref, rel=1e-6)
        ref = mm.SurfaceDistanceMetric(symmetric=True)(P, T, spacing=sp).item()
        assert float(assd(p, t, spacing=sp)) == pytest.approx(ref, rel=1e-6)
        P2, T2 = (torch.cat([1 - x, x], 1).float() for x in (P.long(), T.long()))
        ref = mm.compute_surface_dice(P2, T2, class_thresholds=[1.5], spacing=sp).item()
        assert float(nsd(p, t, tolerance=1.5, spacing=sp)) == pytest.approx(ref, rel=1e-6)
