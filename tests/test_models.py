"""Acceptance tests for `segcourse.models`: shapes, gradients, determinism, dropout, skip parameter counts."""
import pytest
import torch

from segcourse.core import seed_everything
from segcourse.models import UNet, get_model

torch.set_num_threads(1)

def n_params(m): return sum(p.numel() for p in m.parameters())

TINY = dict(features=(4, 8, 16))

@pytest.mark.parametrize('size', [(127, 93), (256, 256)])
@pytest.mark.parametrize('in_channels', [1, 3])
def test_unet_shapes(size, in_channels):
    seed_everything(0)
    m = UNet(in_channels, 2, **TINY).eval()
    with torch.no_grad(): y = m(torch.randn(1, in_channels, *size))
    assert y.shape == (1, 2, *size)

@pytest.mark.parametrize('kw', [dict(up='bilinear'), dict(norm='group'), dict(norm='instance'), dict(norm=None),
                                dict(skips=(True, False))])
def test_unet_variants(kw):
    assert UNet(**TINY, **kw)(torch.randn(2, 1, 21, 30)).shape == (2, 1, 21, 30)

def test_unet_gradients_reach_every_parameter():
    m = UNet(**TINY, dropout=0.1)
    m(torch.randn(2, 1, 24, 24)).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing

def test_unet_skip_parameter_formula():
    f = (4, 8, 16, 32)
    full = n_params(UNet(features=f))
    for i in range(3):
        skips = tuple(j != i for j in range(3))
        assert full - n_params(UNet(features=f, skips=skips)) == 9 * f[i] ** 2
        assert n_params(UNet(features=f, norm=None)) - n_params(UNet(features=f, skips=skips, norm=None)) == 9 * f[i] ** 2

def test_unet_default_is_light():
    assert 3e5 < n_params(UNet()) < 1e6

def test_get_model():
    assert isinstance(get_model('UNet', features=(4, 8)), UNet)
    with pytest.raises(ValueError, match="model='segnett' is not valid; choose one of"):
        get_model('segnett')
