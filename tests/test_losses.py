"""The loss registry: every loss by name, numerically safe on empty, full and extreme inputs, with checked gradients."""
import math

import pytest
import torch

from segcourse.losses import LOSSES, get_loss, DiceBCELoss, soft_dice_loss, DeepSupervisionLoss

torch.set_num_threads(1)

# options that make each registered loss constructible (weighted BCE has no default weight)
OPTIONS = {'weighted_bce': dict(pos_weight=99.)}


def make(name, **kw): return get_loss(name, **{**OPTIONS.get(name, {}), **kw})


def example():
    logits = torch.tensor([[0., math.log(3)], [-math.log(3), 0.]]).reshape(1, 1, 2, 2)
    return logits, torch.tensor([[1., 1.], [0., 0.]]).reshape(1, 1, 2, 2)


def test_first_deliverable():
    logits, target = example()
    loss = get_loss('dice_bce')
    assert isinstance(loss, DiceBCELoss) and isinstance(loss, torch.nn.Module)
    assert loss(logits, target).item() == pytest.approx(0.5 * math.log(8 / 3) + 0.3, abs=1e-6)
    assert soft_dice_loss(logits, target, smooth_num=0, smooth_den=0).item() == pytest.approx(0.375, abs=1e-6)
    assert get_loss('dice_bce', reduction='none')(logits.repeat(3, 1, 1, 1), target.repeat(3, 1, 1, 1)).shape == (3,)
    assert get_loss('dice_bce', reduction='sum')(logits.repeat(3, 1, 1, 1), target.repeat(3, 1, 1, 1)).item() == \
        pytest.approx(3 * (0.5 * math.log(8 / 3) + 0.3), abs=1e-5)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"loss='dcie' is not valid; choose one of \['bce'"):
        get_loss('dcie')


CASES = {
    'empty': (torch.full((2, 1, 8, 8), -100.), torch.zeros(2, 1, 8, 8)),
    'empty_target_full_pred': (torch.full((2, 1, 8, 8), 100.), torch.zeros(2, 1, 8, 8)),
    'full': (torch.full((2, 1, 8, 8), 100.), torch.ones(2, 1, 8, 8)),
    'full_target_empty_pred': (torch.full((2, 1, 8, 8), -100.), torch.ones(2, 1, 8, 8)),
    'zero_logits': (torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)),
    'batch1_mixed': ((torch.arange(64.).reshape(1, 1, 8, 8) - 32) * 6, (torch.arange(64.).reshape(1, 1, 8, 8) > 40).float()),
}


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('name', LOSSES)
def test_finite_loss_and_gradient(name, case):
    logits, target = CASES[case]
    logits = logits.clone().requires_grad_()
    for reduction in ('mean', 'sum', 'none'):
        value = make(name, reduction=reduction)(logits, target)
        assert torch.isfinite(value).all(), (name, case, reduction, value)
    make(name)(logits, target).backward()
    assert torch.isfinite(logits.grad).all(), (name, case)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name', LOSSES)
def test_autocast(name, dtype):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.randn(2, 1, 8, 8) * 50
    target = (torch.rand(2, 1, 8, 8) > 0.8).float()
    try:
        with torch.autocast('cpu', dtype=dtype):
            logits = conv(x)
            value = make(name)(logits, target)
    except RuntimeError as e:  # fp16 autocast is not supported on every CPU build
        pytest.skip(f"autocast {dtype} on CPU unavailable: {e}")
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())


@pytest.mark.parametrize('name', LOSSES)
def test_gradcheck(name):
    gen = torch.Generator().manual_seed(0)
    sign = torch.where(torch.rand(2, 1, 4, 4, generator=gen) > 0.5, 1., -1.)
    logits = (sign * (0.3 + torch.rand(2, 1, 4, 4, generator=gen))).double().requires_grad_()  # away from 0
    target = (torch.rand(2, 1, 4, 4, generator=gen) > 0.6).double()
    target[0, 0, 0, 0] = 0.5  # a soft label
    loss = make(name)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-5)


def test_deep_supervision():
    logits, target = example()
    target4 = torch.zeros(1, 1, 4, 4); target4[..., :2, :] = 1
    fine = torch.full((1, 1, 4, 4), 2.)
    ds = DeepSupervisionLoss('dice_bce', weights=[1., 1.])
    want = get_loss('dice_bce')(fine, target4) + get_loss('dice_bce')(logits, target)
    assert ds([fine, logits], target4).item() == pytest.approx(want.item(), abs=1e-6)
