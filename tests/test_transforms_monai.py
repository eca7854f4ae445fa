"Peer check of segcourse.data.transforms against MONAI (test-only dependency): same numbers for the same operation."
import pytest
import torch

monai_transforms = pytest.importorskip('monai.transforms', reason="MONAI is a test-only peer: pip install monai")
from segcourse.data import PercentileClip, ZScore, RandomAffine, RandomFlip

torch.set_num_threads(1)


def test_zscore_matches_normalize_intensity():
    x = torch.rand(2, 16, 12, generator=torch.Generator().manual_seed(0)) * 5
    ref = torch.as_tensor(monai_transforms.NormalizeIntensity(channel_wise=True)(x))
    assert torch.allclose(ZScore()(x)[0], ref, atol=1e-5)


def test_percentile_clip_matches_scale_intensity_range_percentiles():
    x = torch.rand(2, 16, 12, generator=torch.Generator().manual_seed(1)) * 5
    ref = torch.as_tensor(monai_transforms.ScaleIntensityRangePercentiles(1, 99, 0, 1, clip=True, channel_wise=True)(x))
    assert torch.allclose(PercentileClip(1, 99)(x)[0], ref, atol=1e-6)


def test_flip_and_rotate90_match_on_masks():
    m = (torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    assert torch.equal(torch.as_tensor(monai_transforms.Flip(spatial_axis=1)(m)), RandomFlip(1.)(m, m)[1])
    assert torch.equal(torch.as_tensor(monai_transforms.Rotate90(k=1)(m)), RandomAffine(scale=0., rotate=(90, 90))(m, m)[1])
