"Test-time corruptions: identity at severity 0, determinism from the seed, monotone distortion, batches and errors."
import pytest, torch

from segcourse.data import make_phantom
from segcourse.robustness import CORRUPTIONS, SEVERITIES, corrupt, corruption_table, distortion

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def batch():
    return torch.stack([torch.from_numpy(make_phantom(s, size=48, channels=3)['image']) for s in range(3)])

@pytest.mark.parametrize('name', list(CORRUPTIONS))
def test_identity_seed_and_monotone(batch, name):
    assert torch.equal(corrupt(batch, name, 0, seed=5), batch)
    a, b = corrupt(batch, name, 4, seed=3), corrupt(batch, name, 4, seed=3)
    assert torch.equal(a, b) and a.shape == batch.shape and a.dtype == batch.dtype and torch.isfinite(a).all()
    d = [distortion(batch, corrupt(batch, name, s, seed=1)).mean().item() for s in SEVERITIES]
    assert all(x < y for x, y in zip(d, d[1:])), d

@pytest.mark.parametrize('name', ['gaussian_noise', 'rician_noise', 'poisson_noise', 'bias_field', 'ghosting'])
def test_random_corruptions_depend_on_seed(batch, name):
    assert not torch.equal(corrupt(batch, name, 3, seed=0), corrupt(batch, name, 3, seed=1))

def test_independent_of_global_rng(batch):
    torch.manual_seed(0); a = corrupt(batch, 'gaussian_noise', 2, seed=7)
    torch.manual_seed(1); b = corrupt(batch, 'gaussian_noise', 2, seed=7)
    assert torch.equal(a, b)

def test_single_image_and_noise_level(batch):
    assert corrupt(batch[0], 'blur', 2).shape == batch[0].shape
    levels = [distortion(batch, corrupt(batch, 'gaussian_noise', s)).mean().item() for s in SEVERITIES[1:]]
    torch.testing.assert_close(torch.tensor(levels), torch.tensor(CORRUPTIONS['gaussian_noise'][2]), rtol=0.05, atol=0)

def test_table():
    t = corruption_table()
    assert [r['corruption'] for r in t] == list(CORRUPTIONS) and len(t) == 9 and all('s5' in r for r in t)

@pytest.mark.parametrize('args,msg', [(('noise', 1), "corruption='noise' is not valid"), (('blur', 6), 'severity must be'),
                                      (('blur', -1), 'severity must be'), (('blur', 1.5), 'severity must be')])
def test_bad_arguments(batch, args, msg):
    with pytest.raises(ValueError, match=msg):
        corrupt(batch, *args)

def test_integer_image_is_refused():
    with pytest.raises(ValueError, match='float tensor'):
        corrupt(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 'blur', 1)
