"Tests of FolderDataset: published layouts (DRIVE, PH2), every file type, colour modes, and bad input."
import numpy as np
import pytest
import torch
from PIL import Image

from segcourse.data import FolderDataset, match_pattern, FileProblem

torch.set_num_threads(1)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == '.npy': np.save(path, arr)
    else: Image.fromarray(arr).save(path)


@pytest.fixture
def drive(tmp_path):
    "DRIVE training layout: images/NN_training.tif (RGB), 1st_manual/NN_manual1.gif, mask/NN_training_mask.gif."
    rng = np.random.default_rng(0)
    root, data = tmp_path/'DRIVE'/'training', {}
    for n in ('21', '22', '23'):
        img, ves = rng.integers(0, 256, (10, 9, 3), dtype=np.uint8), (rng.random((10, 9)) < 0.2).astype(np.uint8)
        _save(root/'images'/f'{n}_training.tif', img); _save(root/'1st_manual'/f'{n}_manual1.gif', ves * 255)
        _save(root/'mask'/f'{n}_training_mask.gif', np.full((10, 9), 255, np.uint8))
        data[n] = img, ves
    return root, data


def test_drive_round_trip(drive):
    root, data = drive
    ds = FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif')
    assert ds.case_ids == ['21', '22', '23']
    for i, n in enumerate(data):
        x, y = ds[i]
        assert torch.equal(x, torch.from_numpy(data[n][0]).permute(2, 0, 1).float() / 255)
        assert np.array_equal(y[0].numpy(), data[n][1])
    assert ds.item_info(0)['foreground_fraction'] == pytest.approx(data['21'][1].mean())


def test_drive_grey_and_resize(drive):
    root, data = drive
    x, y = FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif', color='grey', size=5)[0]
    assert x.shape == (1, 5, 5) and y.shape == (1, 5, 5) and set(y.unique().tolist()) <= {0., 1.}


def test_ph2_layout_and_cases(tmp_path):
    for case in ('IMD002', 'IMD003', 'IMD004'):
        _save(tmp_path/case/f'{case}_Dermoscopic_Image'/f'{case}.bmp', np.full((6, 6, 3), 100, np.uint8))
        _save(tmp_path/case/f'{case}_lesion'/f'{case}_lesion.bmp', np.tril(np.full((6, 6), 255, np.uint8)))
        _save(tmp_path/case/f'{case}_roi'/f'{case}_R1.bmp', np.zeros((6, 6), np.uint8))  # not matched: ignored
    ds = FolderDataset(tmp_path, '{id}/{id}_Dermoscopic_Image/{id}.bmp', '{id}/{id}_lesion/{id}_lesion.bmp', cache=True)
    assert len(ds) == 3 and ds[2][1].sum().item() == 21


def test_case_placeholder_pairs_by_case_and_id(tmp_path):
    for case in ('p1', 'p2'):
        for s in ('a', 'b'):
            _save(tmp_path/'img'/case/f'{s}.png', np.zeros((4, 4), np.uint8))
            _save(tmp_path/'gt'/case/f'{s}.png', (np.eye(4) * (case == 'p2') * 255).astype(np.uint8))
    ds = FolderDataset(tmp_path, 'img/{case}/{id}.png', 'gt/{case}/{id}.png')
    assert ds.case_ids == ['p1', 'p1', 'p2', 'p2'] and ds.item_info(2)['id'] == 'p2/a'
    assert [ds[i][1].sum().item() for i in range(4)] == [0, 0, 4, 4]
    with pytest.raises(ValueError, match=r"must both use \{case\} or neither"):
        FolderDataset(tmp_path, 'img/{case}/{id}.png', 'gt/*/{id}.png')


def test_case_and_id_from_paths(tmp_path):
    for case in ('p1', 'p2'):
        for s in ('a', 'b'):
            _save(tmp_path/'img'/f'{case}_{s}.png', np.zeros((4, 4), np.uint8))
            for k in range(3): _save(tmp_path/f'rater{k}'/f'{case}_{s}.png', (np.eye(4) * (k > 0) * 255).astype(np.uint8))
    pats = [f'rater{k}/{{id}}.png' for k in range(3)]
    ds = FolderDataset(tmp_path, 'img/{id}.png', pats, annotator='all', case_id=lambda k: k.split('_')[0])
    assert ds.case_ids == ['p1', 'p1', 'p2', 'p2'] and ds[0][1].shape == (3, 4, 4)
    assert FolderDataset(tmp_path, 'img/{id}.png', pats, annotator='majority')[0][1].sum().item() == 4
    assert FolderDataset(tmp_path, 'img/{id}.png', pats, annotator='mean')[0][1].max().item() == pytest.approx(2 / 3)
    info = ds.item_info(1)
    assert info['annotator_masks'].shape == (3, 4, 4) and info['id'] == 'p1_b'


@pytest.mark.parametrize('ext', ['.png', '.tif', '.bmp', '.gif', '.npy'])
def test_every_file_type_exact(tmp_path, ext):
    img = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    mask = np.zeros((6, 8), np.uint8); mask[1:3, 2:6] = 255 if ext != '.npy' else 1
    _save(tmp_path/'im'/f'x{ext}', img); _save(tmp_path/'gt'/f'x{ext}', mask)
    x, y = FolderDataset(tmp_path, f'im/{{id}}{ext}', f'gt/{{id}}{ext}')[0]
    assert torch.equal(x[0], torch.from_numpy(img).float() / 255) and y.sum().item() == 8


def test_jpeg_mask_needs_threshold(tmp_path):
    mask = np.zeros((16, 16), np.uint8); mask[4:12, 4:12] = 255
    _save(tmp_path/'im'/'x.jpg', np.full((16, 16, 3), 90, np.uint8))
    (tmp_path/'gt').mkdir(); Image.fromarray(mask).save(tmp_path/'gt'/'x.jpg', quality=70)
    with pytest.raises(FileProblem, match=r"x\.jpg: mask is not binary: values .*pass a threshold"):
        FolderDataset(tmp_path, 'im/{id}.jpg', 'gt/{id}.jpg')[0]
    y = FolderDataset(tmp_path, 'im/{id}.jpg', 'gt/{id}.jpg', mask_threshold=127)[0][1]
    assert abs(y.sum().item() - 64) <= 4


# --- bad input -----------------------------------------------------------------------------------------------
def test_mask_without_image(drive):
    root, _ = drive
    (root/'images'/'22_training.tif').unlink()
    with pytest.raises(FileProblem, match=r"22_manual1\.gif: mask without an image \(no file matches 'images/\{id\}_training\.tif' with id '22'\)"):
        FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif')


def test_image_without_mask_and_skip(drive):
    root, _ = drive
    (root/'1st_manual'/'23_manual1.gif').unlink()
    with pytest.raises(FileProblem, match=r"23_training\.tif: image without a mask"):
        FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif')
    with pytest.warns(UserWarning, match=r"FolderDataset skipped 1 file\(s\): .*23_training\.tif: image without a mask"):
        ds = FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif', on_error='skip')
    assert ds.case_ids == ['21', '22'] and len(ds.skipped) == 1


def test_size_mismatch_non_binary_truncated(drive):
    root, _ = drive
    _save(root/'1st_manual'/'21_manual1.gif', np.zeros((5, 5), np.uint8))
    Image.fromarray(np.array([[0, 128, 255]], np.uint8).repeat(10, 0)[:, [0, 1, 2, 0, 1, 2, 0, 1, 2]]).save(root/'1st_manual'/'22_manual1.gif')
    t = root/'images'/'23_training.tif'; t.write_bytes(t.read_bytes()[:60])
    ds = FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif')
    with pytest.raises(FileProblem, match=r"21_manual1\.gif: mask is 5x5 but its image .*21_training\.tif is 10x9"): ds[0]
    with pytest.raises(FileProblem, match=r"22_manual1\.gif: mask is not binary: values 0, 128, 255"): ds[1]
    with pytest.raises(FileProblem, match=r"23_training\.tif: cannot read the file"): ds[2]
    with pytest.warns(UserWarning, match=r"skipped 3 file"):
        assert len(FolderDataset(root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif', verify=True, on_error='skip')) == 0


def test_colour_mask_refused(tmp_path):
    _save(tmp_path/'im'/'x.png', np.zeros((4, 4), np.uint8))
    m = np.zeros((4, 4, 3), np.uint8); m[0, 0] = (255, 0, 0)
    _save(tmp_path/'gt'/'x.png', m)
    with pytest.raises(FileProblem, match=r"x\.png: mask has 3 different colour channels"):
        FolderDataset(tmp_path, 'im/{id}.png', 'gt/{id}.png')[0]


def test_empty_folder_and_no_match(tmp_path, drive):
    with pytest.raises(FileProblem, match="no files match the images pattern 'im/{id}.png'"):
        FolderDataset(tmp_path, 'im/{id}.png', 'gt/{id}.png')
    root, _ = drive
    with pytest.raises(FileProblem, match="no files match the masks pattern '2nd_manual/{id}_manual2.gif'"):
        FolderDataset(root, 'images/{id}_training.tif', '2nd_manual/{id}_manual2.gif')
    with pytest.raises(FileNotFoundError, match="no such folder"):
        FolderDataset(tmp_path/'nope', 'im/{id}.png', 'gt/{id}.png')
    with pytest.raises(ValueError, match=r"must contain \{id\}"):
        match_pattern(tmp_path, 'im/*.png')


def test_bad_options(drive):
    root, _ = drive
    args = (root, 'images/{id}_training.tif', '1st_manual/{id}_manual1.gif')
    with pytest.raises(ValueError, match="annotator=2 is out of range: this data has 1 annotators"): FolderDataset(*args, annotator=2)
    with pytest.raises(ValueError, match="color='gray' is not valid.*did you mean 'grey'"): FolderDataset(*args, color='gray')
    with pytest.raises(ValueError, match="on_error='warn' is not valid"): FolderDataset(*args, on_error='warn')
