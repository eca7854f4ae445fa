"Tests of the LGG loader and the shared file readers: the real sample, round trips, and every bad input."
import os, sys, types, warnings
from pathlib import Path

import numpy as np
import pytest
from data_paths import needs, sample
import torch
from PIL import Image

from segcourse.data import (
    LGGDataset, case_volume, download_lgg, find_lgg_root, lgg_cases, write_lgg_case, FileProblem,
    as_binary_mask, read_image, check_no_leakage, split_by_case, split_cases)

torch.set_num_threads(1)



LGG_SAMPLE = sample('lgg-sample')
needs_sample = needs('lgg-sample')


@pytest.fixture
def tiny(tmp_path):
    "Two cases in the published layout: 12 slices (slice n has n lesion pixels) and 3 empty slices."
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    masks = np.zeros((12, 8, 8), np.uint8)
    for n in range(12): masks[n].flat[:n + 1] = 1
    root = tmp_path/'kaggle_3m'
    write_lgg_case(root, 'TCGA_AA_0001_20000101', imgs, masks)
    write_lgg_case(root, 'TCGA_BB_0002_20000202', imgs[:3], np.zeros((3, 8, 8)))
    return root, imgs, masks


# --- the real sample --------------------------------------------------------------------------------------
@needs_sample
def test_real_sample_counts_and_order():
    cases = lgg_cases(LGG_SAMPLE)
    assert [c.case_id for c in cases] == ['TCGA_CS_4942_19970222', 'TCGA_EZ_7264_20010816', 'TCGA_HT_7860_19960513']
    assert sum(len(c) for c in cases) == 66
    for c in cases:
        numbers = [n for n, *_ in c.slices]
        assert numbers == sorted(numbers) == list(range(1, len(c) + 1))
        assert all(ip.name == f'{c.case_id}_{n}.tif' and mp.name == f'{c.case_id}_{n}_mask.tif' for n, ip, mp in c.slices)


@needs_sample
def test_real_sample_items():
    ds = LGGDataset(LGG_SAMPLE, cache=True)
    assert len(ds) == 66
    lesion = 0
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 256, 256) and y.shape == (1, 256, 256) and x.dtype == y.dtype == torch.float32
        assert set(y.unique().tolist()) <= {0., 1.}
        lesion += bool(y.any())
    assert lesion == 18  # data README: 18 slices with lesion
    fg = np.mean([ds.item_info(i)['foreground_fraction'] for i in range(len(ds))])
    assert abs(fg - 0.0041) < 0.0005  # README: 0.41% lesion pixels
    raw = np.array(Image.open(ds.items[5][2]))
    assert torch.equal(ds[5][0], torch.from_numpy(raw).permute(2, 0, 1).float() / 255)


@needs_sample
def test_real_sample_split_has_no_leakage():
    ds = LGGDataset(LGG_SAMPLE)
    splits = split_by_case(ds, seed=0)
    check_no_leakage(ds, splits)
    assert sorted(sum(split_cases(ds, splits).values(), [])) == sorted(set(ds.case_ids))
    assert [len(v) for v in split_cases(ds, splits).values()] == [1, 1, 1]


@needs_sample
def test_real_sample_volume_and_flair():
    ds = LGGDataset(LGG_SAMPLE, channels='flair', size=64)
    vol, seg = case_volume(ds, 'TCGA_CS_4942_19970222')
    assert vol.shape == (1, 20, 64, 64) and seg.shape == (1, 20, 64, 64)
    assert set(seg.unique().tolist()) <= {0., 1.}


# --- round trips ------------------------------------------------------------------------------------------
def test_round_trip_exact(tiny):
    root, imgs, masks = tiny
    ds = LGGDataset(root)
    assert len(ds) == 15 and ds.case_ids == ['TCGA_AA_0001_20000101'] * 12 + ['TCGA_BB_0002_20000202'] * 3
    for i in range(12):
        x, y = ds[i]
        assert torch.equal(x, torch.from_numpy(imgs[i]).permute(2, 0, 1).float() / 255)
        assert np.array_equal(y[0].numpy(), masks[i])
        assert ds.item_info(i)['slice'] == i + 1


def test_numeric_order_beyond_nine(tiny):
    root, *_ = tiny
    assert [n for n, *_ in lgg_cases(root)[0].slices] == list(range(1, 13))


def test_cache_gives_same_items_and_is_compact(tiny):
    root, *_ = tiny
    plain, cached = LGGDataset(root), LGGDataset(root, cache=True)
    nbytes = cached.preload()
    assert nbytes == 15 * (8 * 8 * 3 + 8)  # uint8 images + masks packed to 1 bit per pixel
    for i in range(15):
        assert all(torch.equal(a, b) for a, b in zip(plain[i], cached[i]))


def test_channels_and_resize(tiny):
    root, imgs, _ = tiny
    assert LGGDataset(root, channels='post')[0][0].shape == (1, 8, 8)
    assert torch.equal(LGGDataset(root, channels=(2, 0))[0][0][1], torch.from_numpy(imgs[0][..., 0]).float() / 255)
    x, y = LGGDataset(root, size=(4, 6))[11]
    assert x.shape == (3, 4, 6) and y.shape == (1, 4, 6) and set(y.unique().tolist()) <= {0., 1.}


def test_transform_is_applied_to_both(tiny):
    root, *_ = tiny
    flip = lambda x, y: (x.flip(-1), y.flip(-1))
    a, b = LGGDataset(root)[11], LGGDataset(root, transform=flip)[11]
    assert torch.equal(a[0].flip(-1), b[0]) and torch.equal(a[1].flip(-1), b[1])


def test_finds_nested_kaggle_3m(tiny, tmp_path):
    root, *_ = tiny
    nested = tmp_path/'dl'/'lgg-mri-segmentation'
    nested.mkdir(parents=True)
    os.symlink(root, nested/'kaggle_3m')
    assert find_lgg_root(tmp_path/'dl') == nested/'kaggle_3m'


# --- bad input: each names the file and the problem --------------------------------------------------------
def test_mask_without_image(tiny):
    root, *_ = tiny
    (root/'TCGA_AA_0001_20000101'/'TCGA_AA_0001_20000101_5.tif').unlink()
    with pytest.raises(FileProblem, match=r"TCGA_AA_0001_20000101_5_mask\.tif: mask without an image"):
        LGGDataset(root)


def test_image_without_mask(tiny):
    root, *_ = tiny
    (root/'TCGA_AA_0001_20000101'/'TCGA_AA_0001_20000101_7_mask.tif').unlink()
    with pytest.raises(FileProblem, match=r"TCGA_AA_0001_20000101_7\.tif: image without a mask"):
        lgg_cases(root)


def test_skip_reports_what_it_skipped(tiny):
    root, *_ = tiny
    (root/'TCGA_AA_0001_20000101'/'TCGA_AA_0001_20000101_7_mask.tif').unlink()
    (root/'TCGA_AA_0001_20000101'/'notes_x.tif').write_bytes(b'')
    with pytest.warns(UserWarning, match=r"LGGDataset skipped 2 file\(s\)"):
        ds = LGGDataset(root, on_error='skip')
    assert len(ds) == 14
    reasons = dict((Path(p).name, r) for p, r in ds.skipped)
    assert reasons['TCGA_AA_0001_20000101_7.tif'].startswith('image without a mask')
    assert reasons['notes_x.tif'].startswith('not an LGG slice name')


def test_size_mismatch(tiny):
    root, *_ = tiny
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root/'TCGA_BB_0002_20000202'/'TCGA_BB_0002_20000202_2_mask.tif')
    ds = LGGDataset(root)
    with pytest.raises(FileProblem, match=r"TCGA_BB_0002_20000202_2_mask\.tif: mask is 4x4 but its image .*_2\.tif is 8x8"):
        ds[13]


def test_non_binary_mask(tiny):
    root, *_ = tiny
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(root/'TCGA_BB_0002_20000202'/'TCGA_BB_0002_20000202_1_mask.tif')
    with pytest.raises(FileProblem, match=r"_1_mask\.tif: mask is not binary: values 0, 1, 2"):
        LGGDataset(root, verify=True)


def test_truncated_file_and_verify_skip(tiny):
    root, *_ = tiny
    f = root/'TCGA_AA_0001_20000101'/'TCGA_AA_0001_20000101_3.tif'
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(FileProblem, match=r"_3\.tif: cannot read the file; it may be truncated"):
        LGGDataset(root)[2]
    with pytest.warns(UserWarning, match="LGGDataset skipped 1 file"):
        ds = LGGDataset(root, verify=True, on_error='skip')
    assert len(ds) == 14 and ds.skipped[0][0] == str(f)
    assert [ds.item_info(i)['slice'] for i in range(2, 4)] == [4, 5]


def test_three_channel_expected(tiny):
    root, *_ = tiny
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root/'TCGA_BB_0002_20000202'/'TCGA_BB_0002_20000202_3.tif')
    with pytest.raises(FileProblem, match=r"_3\.tif: expected a 3-channel slice"):
        LGGDataset(root)[14]


def test_empty_folder_and_no_matching_files(tmp_path):
    with pytest.raises(ValueError, match="no LGG cases found"):
        lgg_cases(tmp_path)
    (tmp_path/'TCGA_X').mkdir(); (tmp_path/'TCGA_X'/'readme.txt').write_text('x')
    with pytest.raises(FileProblem, match=r"TCGA_X: case folder holds no \.tif slices"):
        lgg_cases(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        LGGDataset(tmp_path/'missing')


def test_bad_options(tiny):
    root, *_ = tiny
    with pytest.raises(ValueError, match=r"channels='T1' is not valid"): LGGDataset(root, channels='T1')
    with pytest.raises(ValueError, match=r"channels=\(3,\) is not valid"): LGGDataset(root, channels=(3,))
    with pytest.raises(ValueError, match=r"on_error='ignore' is not valid"): LGGDataset(root, on_error='ignore')
    with pytest.raises(ValueError, match=r"case_id='nope' is not valid"): case_volume(LGGDataset(root), 'nope')
    with pytest.raises(IndexError, match="out of range for 15 items"): LGGDataset(root)[15]


def test_readers_basic(tmp_path):
    with pytest.raises(FileProblem, match=r"x\.dcm: unsupported file type '\.dcm'"):
        (tmp_path/'x.dcm').write_bytes(b'0'); read_image(tmp_path/'x.dcm')
    assert np.array_equal(as_binary_mask(np.array([[0, 7]])), [[0, 1]])
    assert np.array_equal(as_binary_mask(np.full((2, 2), 255)), np.ones((2, 2)))  # a mask all lesion is fine
    with pytest.raises(FileProblem, match="mask must be 2-D"): as_binary_mask(np.zeros((2, 2, 2, 2)))


# --- download, without the network -------------------------------------------------------------------------
def test_download_uses_existing_data(tiny):
    root, *_ = tiny
    assert download_lgg(root.parent) == root


def test_download_without_tools_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'kagglehub', None)
    monkeypatch.setitem(sys.modules, 'kaggle', None)
    monkeypatch.setitem(sys.modules, 'kaggle.api', None)
    monkeypatch.setitem(sys.modules, 'kaggle.api.kaggle_api_extended', None)
    with pytest.raises(RuntimeError, match=r'kagglehub is not installed; the kaggle package is not installed\)\. To get the LGG data: \(1\) pip install "segcourse\[kaggle\]"'):
        download_lgg(tmp_path/'empty')


def test_download_with_kagglehub(tiny, tmp_path, monkeypatch):
    root, *_ = tiny
    calls = []
    fake = types.SimpleNamespace(dataset_download=lambda handle: calls.append(handle) or str(root.parent))
    monkeypatch.setitem(sys.modules, 'kagglehub', fake)
    assert download_lgg(tmp_path/'elsewhere') == root
    assert calls == ['mateuszbuda/lgg-mri-segmentation']


def test_item_info_reads_masks_only_and_matches_items(tiny):
    root, *_ = tiny
    ds = LGGDataset(root, size=4)
    for i in (0, 11, 14): assert ds.item_info(i)['foreground_fraction'] == pytest.approx(ds[i][1].mean().item())
    f = root/'TCGA_AA_0001_20000101'/'TCGA_AA_0001_20000101_3.tif'
    f.write_bytes(f.read_bytes()[:100])  # the image is broken, its mask is fine
    assert LGGDataset(root).item_info(2)['foreground_fraction'] == 3 / 64


LGG_DEV = sample('lgg-dev')

@needs('lgg-dev')
def test_dev_set_figures_and_stratified_split():
    ds = LGGDataset(LGG_DEV)
    assert (len(ds.cases), len(ds)) == (39, 1303)
    fg = np.array([ds.item_info(i)['foreground_fraction'] for i in range(len(ds))])  # masks only: quick
    assert (fg > 0).sum() == 425 and abs(fg.mean() - 0.0081) < 0.0005  # data README
    splits = split_by_case(ds, seed=0, stratify='lesion')
    check_no_leakage(ds, splits)
    assert [len(v) for v in split_cases(ds, splits).values()] == [27, 6, 6]  # 70/15/15 of 39, rounded per stratum
