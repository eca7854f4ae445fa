"""The loss registry: every loss by name, numerically safe on empty, full and extreme inputs, with checked gradients."""
import math

import pytest
import torch

import numpy as np

from segcourse.losses import (
    LOSSES, BINARY_LOSSES, get_loss, DeepSupervisionLoss, DiceBCELoss, soft_dice_loss, generalised_dice_loss, distance_maps,
    DistanceMapCache)

torch.set_num_threads(1)

# options that make each registered loss constructible (weighted BCE has no default weight)
OPTIONS = {'weighted_bce': dict(pos_weight=99.)}


def make(name, **kw): return get_loss(name, **{**OPTIONS.get(name, {}), **kw})


def example(dtype=torch.float32):
    logits = torch.tensor([[0., math.log(3)], [-math.log(3), 0.]], dtype=dtype).reshape(1, 1, 2, 2)
    return logits, torch.tensor([[1., 1.], [0., 0.]], dtype=dtype).reshape(1, 1, 2, 2)


def test_first_deliverable():
    logits, target = example()
    loss = get_loss('dice_bce')
    assert isinstance(loss, DiceBCELoss) and isinstance(loss, torch.nn.Module)
    assert loss(logits, target).item() == pytest.approx(0.5 * math.log(8 / 3) + 0.3, abs=1e-6)
    assert soft_dice_loss(logits, target, smooth_num=0, smooth_den=0).item() == pytest.approx(0.375, abs=1e-6)
    assert get_loss('dice_bce', reduction='none')(logits.repeat(3, 1, 1, 1), target.repeat(3, 1, 1, 1)).shape == (3,)
    assert get_loss('dice_bce', reduction='sum')(logits.repeat(3, 1, 1, 1), target.repeat(3, 1, 1, 1)).item() == \
        pytest.approx(3 * (0.5 * math.log(8 / 3) + 0.3), abs=1e-5)


L83 = math.log(8 / 3)  # 2 * mean BCE of the example
# every loss on the 2x2 example (p = 0.5, 0.75, 0.25, 0.5; target 1, 1, 0, 0), computed by hand
HAND = {
    'bce': 0.5 * L83,
    'weighted_bce': (99 * (math.log(2) + math.log(4 / 3)) + math.log(4 / 3) + math.log(2)) / 4,
    'balanced_bce': 0.25 * L83,
    'focal': (0.25 * (math.log(2) / 4 + math.log(4 / 3) / 16) + 0.75 * (math.log(4 / 3) / 16 + math.log(2) / 4)) / 4,
    'dice': 1 - 3.5 / 5,
    'log_cosh_dice': math.log(math.cosh(0.3)),
    'iou': 1 - 2.25 / 3.75,
    'tversky': 1 - 2.25 / (1.25 + 0.3 * 0.75 + 0.7 * 0.75 + 1),
    'focal_tversky': (1 - 2.25 / 3) ** 0.75,
    'sensitivity_specificity': 0.05 * 0.3125 / (2 + 1e-5) + 0.95 * 0.3125 / (2 + 1e-5),
    'generalised_dice': 1 - (2 * 1.25 + 1e-5) / (4 + 1e-5),
    'shape_aware': L83,
    'boundary': (0.25 + 0.5) / 4,  # signed map 0, 0, 1, 1
    'hausdorff_dt': 0.328125,
    'dice_bce': 0.5 * L83 + 0.3,
    'combo': 0.25 * L83 / 2 + 0.15,
    'exp_log': 0.8 * (-math.log(0.7)) ** 0.3 + 0.2 * (2 * math.log(2) ** 0.3 + 2 * math.log(4 / 3) ** 0.3) / 4,
}


def test_hand_values_cover_the_registry():
    assert set(HAND) == set(BINARY_LOSSES)


@pytest.mark.parametrize('name', HAND)
def test_hand_value(name):
    logits, target = example()
    assert make(name)(logits, target).item() == pytest.approx(HAND[name], abs=1e-6)
    # float64 inputs stay float64 (distance maps are stored as float32, hence 1e-8 rather than 1e-12)
    assert make(name)(*example(torch.float64)).item() == pytest.approx(HAND[name], abs=1e-8)


@pytest.mark.parametrize('name', BINARY_LOSSES)
def test_reductions_and_batch(name):
    logits, target = example()
    batch_logits, batch_target = logits.repeat(3, 1, 1, 1), target.repeat(3, 1, 1, 1)
    none = make(name, reduction='none')(batch_logits, batch_target)
    assert none.shape == (3,) and none.tolist() == pytest.approx([HAND[name]] * 3, abs=1e-6)
    if name != 'balanced_bce':  # its weight depends on the whole batch, which here has the same ratio
        assert make(name, reduction='sum')(batch_logits, batch_target).item() == pytest.approx(3 * HAND[name], abs=1e-5)
    assert make(name)(batch_logits, batch_target[:, 0]).item() == pytest.approx(HAND[name], abs=1e-6)  # B H W target


@pytest.mark.parametrize('name', BINARY_LOSSES)
def test_3d_and_several_channels(name):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 4, 3, generator=gen).requires_grad_()
    target = (torch.rand(2, 2, 4, 4, 3, generator=gen) > 0.5).float()
    value = make(name)(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('name', BINARY_LOSSES)
def test_bad_inputs(name):
    logits, target = example()
    with pytest.raises(ValueError, match='does not match'): make(name)(logits, target[..., :1])
    with pytest.raises(ValueError, match=r'\[0, 1\]'): make(name)(logits, target * 2)
    with pytest.raises(TypeError, match='torch tensors'): make(name)(logits, target.numpy())
    with pytest.raises(ValueError, match="reduction='avg'"): make(name, reduction='avg')


def test_per_image_batch_dice_none_shape():
    logits, target = example()
    assert soft_dice_loss(logits.repeat(2, 1, 1, 1), target.repeat(2, 1, 1, 1), per_image=False, reduction='none').shape == (1,)


def test_generalised_dice_multiclass_labels_and_perfect():
    labels = torch.tensor([[0, 1], [2, 2]]).reshape(1, 1, 2, 2)
    onehot = torch.moveaxis(torch.nn.functional.one_hot(labels[:, 0], 3), -1, 1).float()
    assert generalised_dice_loss((onehot - 0.5) * 200, labels).item() == pytest.approx(0, abs=1e-6)
    assert generalised_dice_loss((0.5 - onehot) * 200, labels).item() == pytest.approx(1, abs=1e-5)


def test_distance_map_cache_reuses_items():
    cache = DistanceMapCache(maxsize=2)
    target = torch.zeros(4, 1, 6, 6); target[0, 0, 1:3, 1:3] = 1; target[1, 0, 2:5, 2:5] = 1
    first = distance_maps(target, cache=cache)
    assert (cache.misses, cache.hits) == (3, 1)  # two masks and one empty map, the second empty one is a hit
    assert len(cache) == 2  # LRU: the oldest of the three was dropped
    again = distance_maps(target, 'signed', cache=cache)
    assert torch.equal(first, again) and torch.equal(first, distance_maps(target))
    with pytest.raises(ValueError, match='maxsize'): DistanceMapCache(0)


def test_deep_supervision_with_boundary_loss_resizes_maps():
    target = torch.zeros(2, 1, 8, 8); target[:, :, 2:6, 2:6] = 1
    heads = [torch.randn(2, 1, 8, 8), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    value = DeepSupervisionLoss('boundary', target_resize='nearest')(heads, target)
    assert torch.isfinite(value)


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
@pytest.mark.parametrize('name', BINARY_LOSSES)
def test_finite_loss_and_gradient(name, case):
    logits, target = CASES[case]
    logits = logits.clone().requires_grad_()
    for reduction in ('mean', 'sum', 'none'):
        value = make(name, reduction=reduction)(logits, target)
        assert torch.isfinite(value).all(), (name, case, reduction, value)
    make(name)(logits, target).backward()
    assert torch.isfinite(logits.grad).all(), (name, case)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name', BINARY_LOSSES)
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


@pytest.mark.parametrize('name', BINARY_LOSSES)
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


@pytest.mark.parametrize('shape', [(9, 13), (1, 7), (5, 6, 4)])
@pytest.mark.parametrize('seed', range(3))
def test_torch_distance_maps_match_scipy(shape, seed):
    rng = np.random.default_rng(seed)
    masks = torch.from_numpy(rng.random((2, 1) + shape) > 0.6).float()
    for kind in ('signed', 'contour'):
        scipy_maps = distance_maps(masks, kind, backend='scipy')
        torch_maps = distance_maps(masks, kind, backend='torch')
        assert torch.allclose(scipy_maps, torch_maps, atol=1e-5), (kind, shape, seed)
    with pytest.raises(ValueError, match="backend='scipy'"):
        distance_maps(masks, cache=DistanceMapCache(), backend='torch')


@pytest.mark.parametrize('name', BINARY_LOSSES)
def test_modules_pickle_and_copy(name):
    import copy, io, pickle
    loss = make(name, reduction='sum')
    logits, target = example()
    for clone in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert type(clone) is type(loss) and clone.options == loss.options
        assert clone(logits, target).item() == pytest.approx(loss(logits, target).item(), abs=1e-7)
    buffer = io.BytesIO(); torch.save(loss, buffer); buffer.seek(0)
    assert type(torch.load(buffer, weights_only=False)) is type(loss)


def test_star_import_brings_the_catalogue():
    import segcourse.losses as losses
    assert all(hasattr(losses, n) for n in losses.__all__)
    for cls in LOSSES.values():
        assert cls.__name__ in losses.__all__ and cls.fn.__name__ in losses.__all__


def test_gradcheck_multiclass_generalised_dice_and_deep_supervision():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=gen).double().requires_grad_()
    labels = torch.randint(0, 3, (2, 1, 4, 4), generator=gen)
    assert torch.autograd.gradcheck(lambda x: generalised_dice_loss(x, labels), (logits,), eps=1e-6, atol=1e-5)
    target = (torch.rand(2, 1, 4, 4, generator=gen) > 0.5).double()
    fine = torch.randn(2, 1, 4, 4, generator=gen).double().requires_grad_()
    coarse = torch.randn(2, 1, 2, 2, generator=gen).double().requires_grad_()
    ds = DeepSupervisionLoss('dice_bce')
    assert torch.autograd.gradcheck(lambda a, b: ds([a, b], target), (fine, coarse), eps=1e-6, atol=1e-5)
