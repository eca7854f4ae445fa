"""Lesion-level detection: matching rules, connectivity, size filter, empty cases, batches and 3D."""
import math

import numpy as np
import pytest
import torch

from segcourse.metrics import components, lesion_counts, lesion_metrics

torch.set_num_threads(1)


def _c(p, t, **kw): return {k: int(v) for k, v in lesion_counts(p, t, **kw).items()}


def test_one_component_covering_two_lesions():
    t = np.zeros((5, 9), bool); t[2, 1:3] = True; t[2, 5:7] = True
    p = np.zeros_like(t); p[2, 1:7] = True
    assert _c(p, t) == dict(lesions=2, detected=2, predicted=1, false_positives=0)
    m = lesion_metrics(p, t)
    assert float(m['lesion_sensitivity']) == 1 and float(m['lesion_precision']) == 1 and float(m['lesion_f1']) == 1


def test_min_overlap_is_strict_fraction():
    t = np.zeros((4, 8), bool); t[1, 0:4] = True  # 4-pixel lesion
    p = np.zeros_like(t); p[1, 0:2] = True  # covers half; the prediction lies fully inside
    assert _c(p, t, min_overlap=0.0)['detected'] == 1
    assert _c(p, t, min_overlap=0.49)['detected'] == 1
    assert _c(p, t, min_overlap=0.5)['detected'] == 0  # must exceed
    assert _c(p, t, min_overlap=0.5)['false_positives'] == 0  # 100% of the component is in the target
    with pytest.raises(ValueError, match="min_overlap"): lesion_counts(p, t, min_overlap=1.0)


@pytest.mark.parametrize('case,expected', [
    ('both_empty', dict(lesion_sensitivity=1, lesion_precision=1, lesion_f1=1, false_positive_lesions=0)),
    ('pred_empty', dict(lesion_sensitivity=0, lesion_precision=0, lesion_f1=0, false_positive_lesions=0)),
    ('target_empty', dict(lesion_sensitivity=0, lesion_precision=0, lesion_f1=0, false_positive_lesions=1)),
    ('single_voxel', dict(lesion_sensitivity=1, lesion_precision=1, lesion_f1=1, false_positive_lesions=0)),
    ('border', dict(lesion_sensitivity=1, lesion_precision=1, lesion_f1=1, false_positive_lesions=0)),
    ('full', dict(lesion_sensitivity=1, lesion_precision=1, lesion_f1=1, false_positive_lesions=0)),
])
def test_empty_cases(case, expected):
    z = np.zeros((5, 5), bool); one = z.copy(); one[2, 2] = True; border = z.copy(); border[0] = True
    p, t = dict(both_empty=(z, z), pred_empty=(z, one), target_empty=(one, z), single_voxel=(one, one),
                border=(border, border), full=(~z, ~z))[case]
    got = {k: float(v) for k, v in lesion_metrics(p, t).items()}
    assert got == expected
    nan = lesion_metrics(p, t, empty='nan')
    if case == 'both_empty': assert all(math.isnan(float(nan[k])) for k in ('lesion_sensitivity', 'lesion_precision', 'lesion_f1'))
    if case == 'target_empty': assert math.isnan(float(nan['lesion_sensitivity'])) and float(nan['lesion_precision']) == 0


def test_batch_3d_torch_and_micro():
    rng = np.random.default_rng(0)
    t = rng.random((3, 1, 6, 8, 8)) > 0.93; p = rng.random((3, 1, 6, 8, 8)) > 0.93
    p[0] = t[0]
    m = lesion_metrics(p, t); mt = lesion_metrics(torch.from_numpy(p), torch.from_numpy(t))
    for k in m:
        assert isinstance(mt[k], torch.Tensor) and m[k].shape == (3,)
        np.testing.assert_allclose(m[k], mt[k].numpy())
        assert float(lesion_metrics(p[1, 0], t[1, 0])[k]) == pytest.approx(float(m[k][1]))
    assert float(m['lesion_f1'][0]) == 1.0
    c = lesion_counts(p, t); micro = lesion_metrics(p, t, micro=True)
    assert micro['lesion_sensitivity'] == pytest.approx(c['detected'].sum() / c['lesions'].sum())
    assert micro['false_positives_per_image'] == pytest.approx(c['false_positives'].sum() / 3)
    # 26-connectivity merges diagonal neighbours that 6-connectivity keeps apart
    assert (lesion_counts(p, t, connectivity=1)['lesions'] >= c['lesions']).all()


def test_components_size_filter_relabels():
    m = np.zeros((6, 6), bool); m[0, 0] = True; m[2:4, 2:4] = True; m[5, 3:6] = True
    labels, n = components(m, min_size=3)
    assert n == 2 and set(np.unique(labels)) == {0, 1, 2} and labels[0, 0] == 0


def test_probabilities_need_threshold():
    probs = np.random.default_rng(0).random((5, 5))
    with pytest.raises(ValueError, match="explicit threshold"): lesion_counts(probs, probs > 0.5)
    assert _c(probs, probs > 0.5, threshold=0.5)['false_positives'] == 0
