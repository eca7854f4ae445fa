"""MetricAccumulator: per-slice, per-case and micro levels against direct computation, across batch sizes."""
import numpy as np
import pytest
import torch

from segcourse import metrics as M
from segcourse.metrics import MetricAccumulator, COUNT_METRICS

torch.set_num_threads(1)


def _data(seed=0, n=13):
    rng = np.random.default_rng(seed)
    prob = rng.random((n, 1, 6, 7)).astype(np.float32)
    tgt = rng.random((n, 1, 6, 7)) < rng.uniform(0, 0.5, (n, 1, 1, 1))
    tgt[[2, 5]] = False  # lesion-free slices
    cases = np.repeat(['p1', 'p2', 'p3', 'p4'], [4, 3, 5, 1])
    return prob, tgt, cases


@pytest.mark.parametrize('cuts', [(13,), (1, 12), (5, 1, 7), (2, 2, 2, 2, 2, 3)])
def test_levels_match_direct(cuts):
    prob, tgt, cases = _data()
    acc = MetricAccumulator(COUNT_METRICS, threshold=0.4)
    start = 0
    for size in cuts:
        acc.update(prob[start:start + size], tgt[start:start + size], case_id=cases[start:start + size]); start += size
    per_slice = acc.compute('slice', 'none')
    for m in COUNT_METRICS:
        direct = getattr(M, m)(prob, tgt, threshold=0.4)
        np.testing.assert_allclose(per_slice[m].numpy(), direct, rtol=1e-12)
        assert acc.compute('slice', 'median')[m] == pytest.approx(float(np.nanmedian(direct)), nan_ok=True)
        per_case = [float(getattr(M, m)(prob[cases == c].reshape(-1), tgt[cases == c].reshape(-1), threshold=0.4))
                    for c in ['p1', 'p2', 'p3', 'p4']]
        np.testing.assert_allclose(acc.compute('case', 'none')[m].numpy(), per_case, rtol=1e-12)
        assert acc.compute('micro')[m] == pytest.approx(float(getattr(M, m)(prob.ravel(), tgt.ravel(), threshold=0.4)))
    assert acc.case_ids() == ['p1', 'p2', 'p3', 'p4']


def test_case_id_forms_and_errors():
    prob, tgt, _ = _data()
    acc = MetricAccumulator(threshold=0.5)
    acc.update(prob[:3], tgt[:3]); acc.update(prob[3:5], tgt[3:5], case_id=7); acc.update(prob[5:7], tgt[5:7], case_id=torch.tensor([7, 8]))
    assert acc.case_ids()[3:] == [7, 8] and len(acc.case_ids()) == 5
    with pytest.raises(ValueError, match="case_id has 3 entries for a batch of 2"): acc.update(prob[:2], tgt[:2], case_id=[1, 2, 3])
    with pytest.raises(ValueError, match="explicit threshold"): MetricAccumulator().update(prob, tgt)
    with pytest.raises(ValueError, match="did you mean 'dice'"): MetricAccumulator('dise')
    with pytest.raises(ValueError, match="reduction='sum' is not valid"): acc.compute(reduction='sum')


def test_empty_policy_reaches_the_accumulator():
    z = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    assert MetricAccumulator().update(z, z).compute()['dice'] == 1.0
    assert np.isnan(MetricAccumulator(empty='nan').update(z, z).compute()['dice'])  # all NaN: the mean is NaN
