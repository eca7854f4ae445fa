"Tests of paired augmentation: masks stay binary and aligned, known shapes land where expected, seeds reproduce."
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from segcourse.data import (
    BiasField, GaussianBlur, GaussianNoise, PercentileClip, RandomContrast, RandomGamma, RicianNoise, ZScore,
    default_augmentation, CenterCrop, Compose, RandomAffine, RandomCrop, RandomFlip, Resize, warp)

torch.set_num_threads(1)


def square(h=8, w=8, top=2, left=2, size=2):
    m = torch.zeros(1, h, w); m[0, top:top + size, left:left + size] = 1
    return m


def blob(seed=0, h=32, w=40):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h * 1.), torch.arange(w * 1.), indexing='ij')
    cy, cx = torch.randint(10, h - 10, (1,), generator=g).item(), torch.randint(10, w - 10, (1,), generator=g).item()
    return (((yy - cy) ** 2 + (xx - cx) ** 2) < 30).float()[None]


# --- known shapes land where expected ---------------------------------------------------------------------------
def test_translate_moves_image_and_mask_by_whole_pixels():
    m = square()
    x, y = RandomAffine(scale=0., rotate=0., translate=(0.25, 0.25))(m, m)  # 0.25 of 8 px = 2 px
    assert torch.equal(y, square(top=0, left=0)) and torch.allclose(x, y, atol=1e-6)


def test_rotate_180_equals_both_flips_on_a_non_square_image():
    img, m = torch.rand(2, 6, 10), square(6, 10, 1, 6, 2)
    x, y = RandomAffine(scale=0., rotate=(180, 180))(img, m)
    assert torch.allclose(x, img.flip(-1, -2), atol=1e-5) and torch.equal(y, m.flip(-1, -2))


def test_zoom_in_doubles_a_centred_square():
    x, y = RandomAffine(scale=(2., 2.), rotate=0.)(square(8, 8, 2, 2, 4), square(8, 8, 2, 2, 4))
    assert y.sum().item() == 64


def test_vertical_flip_and_crop_positions():
    _, y = RandomFlip(horizontal=0., vertical=1.)(square(), square())
    assert torch.equal(y, square(top=4))
    _, y = CenterCrop((4, 6))(square(), square())
    assert y.shape == (1, 4, 6) and torch.equal(y[0, :2, 1:3], torch.ones(2, 2))


@pytest.mark.parametrize('seed', range(10))
def test_random_geometry_keeps_image_and_mask_aligned(seed):
    m = blob(seed)
    aug = Compose([RandomAffine(scale=0.2, rotate=180, translate=0.1), RandomFlip(0.5, 0.5)], seed=seed)
    x, y = aug(m, m)
    assert set(y.unique().tolist()) <= {0., 1.}
    inter, union = ((x > 0.5) & (y > 0.5)).sum(), ((x > 0.5) | (y > 0.5)).sum()
    assert inter / union > 0.85  # bilinear image and nearest mask cover the same pixels, up to the edge
    cy = lambda t: (t[0] * torch.arange(t.shape[1])[:, None]).sum() / t[0].sum()
    assert abs(cy(x) - cy(y)) < 0.5


def test_fused_resample_matches_sequential():
    m, img = blob(3), torch.rand(3, 32, 40)
    steps = [RandomAffine(scale=0.1, rotate=20), RandomFlip(1.)]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    fused = Compose(steps)(img, m, g1)
    seq = steps[1](*steps[0](img, m, g2), g2)
    assert torch.allclose(fused[0], seq[0], atol=1e-5) and (fused[1] != seq[1]).float().mean() < 0.01


# --- masks: binary, several annotators, soft, dtype -------------------------------------------------------------
@pytest.mark.parametrize('seed', range(5))
def test_default_augmentation_keeps_masks_binary_items_and_batches(seed):
    masks = torch.stack([blob(seed + k)[0] for k in range(4)])  # 4 annotators
    x, y = default_augmentation(size=24, seed=seed)(torch.rand(3, 32, 40), masks)
    assert x.shape == (3, 24, 24) and y.shape == (4, 24, 24) and set(y.unique().tolist()) <= {0., 1.}
    xb, yb = default_augmentation(seed=seed, batch=True)(torch.rand(6, 3, 32, 40), masks[None].repeat(6, 1, 1, 1))
    assert set(yb.unique().tolist()) <= {0., 1.}
    assert len({tuple(v.flatten().tolist()) for v in yb}) > 1  # each sample its own draw


def test_soft_masks_keep_their_values_and_dtype_is_kept():
    soft = blob(0) * 0.75
    _, y = RandomAffine(scale=0.1, rotate=30)(torch.rand(1, 32, 40), soft)
    assert set(y.unique().tolist()) <= {0., 0.75}
    _, y8 = RandomAffine(rotate=30)(torch.rand(1, 32, 40), blob(0).to(torch.uint8))
    assert y8.dtype == torch.uint8


def test_intensity_transforms_leave_masks_alone():
    m = blob(1)
    for t in (RandomGamma(p=1.), RandomContrast(p=1.), GaussianNoise(p=1.), RicianNoise(p=1.), BiasField(p=1.),
              GaussianBlur(p=1.), ZScore(), PercentileClip()):
        x, y = t(torch.rand(2, 32, 40), m)
        assert torch.equal(y, m) and x.shape == (2, 32, 40) and torch.isfinite(x).all(), t


def test_p_zero_is_identity_and_p_applies_per_sample():
    x = torch.rand(8, 1, 16, 16)
    assert torch.equal(GaussianNoise(p=0.)(x)[0], x)
    out = GaussianNoise((0.5, 0.5), p=0.5)(x, generator=torch.Generator().manual_seed(0))[0]
    changed = [(a != b).any().item() for a, b in zip(out, x)]
    assert 0 < sum(changed) < 8


def test_deterministic_transforms_same_per_item_and_batch():
    xs = torch.rand(3, 2, 20, 20)
    t = Compose([CenterCrop(12), Resize(6), ZScore()])
    xb, _ = t(xs)
    for i in range(3): assert torch.allclose(t(xs[i])[0], xb[i], atol=1e-6)


def test_random_crop_pads_small_images():
    x, y = RandomCrop(10)(torch.ones(1, 4, 6), torch.ones(1, 4, 6))
    assert x.shape == (1, 10, 10) and x.sum() == 24 and torch.equal(x, y)


# --- seeds ------------------------------------------------------------------------------------------------------
def test_seed_reproduces_and_differs():
    img, m = torch.rand(1, 32, 40), blob(0)
    run = lambda s: [default_augmentation(seed=s)(img, m) for _ in range(3)]
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert any(not torch.equal(p[0], q[0]) for p, q in zip(a, c))
    torch.manual_seed(7); u = default_augmentation()(img, m)
    torch.manual_seed(7); v = default_augmentation()(img, m)
    assert torch.equal(u[0], v[0])


class Same(Dataset):
    def __init__(self, aug): self.aug = aug
    def __len__(self): return 8
    def __getitem__(self, i): return self.aug(torch.zeros(1, 16, 16) + 0.5, square(16, 16, 4, 4, 6))


def test_workers_and_epochs_differ_runs_reproduce():
    def epochs(seed):
        torch.manual_seed(seed)
        dl = DataLoader(Same(default_augmentation(seed=0)), batch_size=4, num_workers=2)
        return [torch.cat([x for x, _ in dl]) for _ in range(2)]
    a, b = epochs(0), epochs(0)
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # same torch seed, same run
    e0, e1 = a
    assert not torch.equal(e0[:4], e0[4:])  # the two workers draw differently
    assert not torch.equal(e0, e1)  # and every epoch anew


# --- bad arguments ----------------------------------------------------------------------------------------------
def test_errors():
    with pytest.raises(ValueError, match=r"p=1.5 must be a probability"): GaussianNoise(p=1.5)
    with pytest.raises(ValueError, match=r"rotate=\(10, -10\) must be \(low, high\)"): RandomAffine(rotate=(10, -10))
    with pytest.raises(ValueError, match="must keep zoom factors above 0"): RandomAffine(scale=1.)
    with pytest.raises(ValueError, match=r"mask has shape \(1, 8, 9\) but image has \(1, 8, 8\)"):
        RandomFlip()(torch.zeros(1, 8, 8), torch.zeros(1, 8, 9))
    with pytest.raises(ValueError, match=r"image has shape \(8, 8\); expected C H W or B C H W"): RandomFlip()(torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"expected C H W \(batch=False\)"): Compose([], batch=False)(torch.zeros(2, 1, 8, 8))
    with pytest.raises(TypeError, match="Compose takes segcourse Transforms"): Compose([None])
    with pytest.raises(ValueError, match="percentiles low=90, high=10"): PercentileClip(90, 10)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_batch_on_gpu():
    x, y = torch.rand(4, 3, 64, 64, device='cuda'), (torch.rand(4, 1, 64, 64, device='cuda') > 0.9).float()
    xa, ya = default_augmentation(seed=0, batch=True)(x, y)
    assert xa.device.type == 'cuda' and set(ya.unique().tolist()) <= {0., 1.}


def test_pipeline_and_dataset_pickle_for_spawned_workers(tmp_path):
    import pickle
    from segcourse.data.lgg import LGGDataset, write_lgg_case
    aug = default_augmentation(seed=0)
    aug(torch.rand(1, 8, 8), torch.zeros(1, 8, 8))  # generator created and advanced
    twin = pickle.loads(pickle.dumps(aug))
    x = torch.rand(1, 16, 16)
    assert torch.equal(aug(x, blob(0)[:, :16, :16])[0], twin(x, blob(0)[:, :16, :16])[0])  # same state, same draw
    write_lgg_case(tmp_path, 'TCGA_XX_0001_20000101', np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8)))
    ds = LGGDataset(tmp_path, cache=True, transform=aug)
    ds.preload()
    assert len(pickle.loads(pickle.dumps(ds))) == 2
