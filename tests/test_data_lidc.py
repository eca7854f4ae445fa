"Tests of the LIDC loader: the real sample, the three layouts read back exactly, annotator choices, bad input."
import os, pickle
from pathlib import Path

import numpy as np
import pytest
from data_paths import needs, sample
import torch
from PIL import Image
from torch.utils.data import DataLoader

from segcourse.data.lidc import (LIDCDataset, check_lidc_arrays, lidc_pickle_to_npz, load_lidc_npz, load_lidc_pickle,
                            load_lidc_pngs, save_lidc_npz, write_lidc_pngs)
from segcourse.data import FileProblem, check_no_leakage, split_by_case, split_cases

torch.set_num_threads(1)



LIDC = sample('lidc-sample').parent if sample('lidc-sample') else Path('lidc-sample-not-found')
needs_sample = needs('lidc-sample')


@pytest.fixture
def arrays():
    rng = np.random.default_rng(1)
    masks = np.zeros((5, 4, 8, 8), np.uint8)
    for i in range(5):
        for k in range(4): masks[i, k, 2:5 + k % 2, 2:4 + i % 3] = k <= i  # crop i: readers 0..i mark a lesion
    return dict(images=rng.random((5, 8, 8), dtype=np.float32), masks=masks,
                series_uid=np.array(['s1', 's1', 's2', 's3', 's3']), keys=np.array([f'c{i}_slice{i}' for i in range(5)]))


def _write_pickle(a, path):
    d = {k: dict(image=a['images'][i], masks=list(a['masks'][i]), series_uid=str(a['series_uid'][i])) for i, k in enumerate(a['keys'])}
    with open(path, 'wb') as f: pickle.dump(d, f)
    return path


# --- the real sample ---------------------------------------------------------------------------------------
@needs_sample
def test_real_npz():
    ds = LIDCDataset(LIDC/'lidc_subset.npz', annotator='all')
    assert len(ds) == 71 and ds.masks.shape == (71, 4, 128, 128) and ds.images.dtype == np.float32
    x, y = ds[0]
    assert x.shape == (1, 128, 128) and y.shape == (4, 128, 128)
    marking = np.array([ds.item_info(i)['annotators_marking'] for i in range(71)])
    assert np.bincount(marking, minlength=5).tolist() == [0, 17, 18, 18, 18]  # README: stratified by readers marking


@needs_sample
def test_real_pickle_matches_npz():
    if not (LIDC/'data_lidc_sample.pickle').is_file(): pytest.skip("data_lidc_sample.pickle not found")
    with pytest.raises(FileProblem, match="not loaded: unpickling a file can run code"):
        LIDCDataset(LIDC/'data_lidc_sample.pickle')
    p = LIDCDataset(LIDC/'data_lidc_sample.pickle', trusted=True, annotator='all')
    z = load_lidc_npz(LIDC/'lidc_subset.npz')
    order = np.argsort(z['keys'])
    assert p.keys == list(z['keys'][order])
    assert np.array_equal(p.masks, z['masks'][order]) and np.array_equal(p.images, z['images'][order])
    assert p.case_ids == list(z['series_uid'][order])


@needs_sample
def test_real_split_by_series():
    ds = LIDCDataset(LIDC/'lidc_subset.npz')
    assert len(set(ds.case_ids)) == 59
    splits = split_by_case(ds, seed=0, stratify='lesion')
    check_no_leakage(ds, splits)
    cases = split_cases(ds, splits)
    assert sum(map(len, cases.values())) == 59 and all(len(v) > 0 for v in cases.values())


# --- layouts read back exactly ------------------------------------------------------------------------------
def test_pickle_npz_round_trip(arrays, tmp_path):
    src = _write_pickle(arrays, tmp_path/'d.pickle')
    a = load_lidc_pickle(src, trusted=True)
    for k in ('images', 'masks'): assert np.array_equal(a[k], arrays[k])
    dest = lidc_pickle_to_npz(src, trusted=True)
    assert dest == tmp_path/'d.npz'
    with np.load(dest, allow_pickle=False) as z: assert sorted(z.files) == ['images', 'keys', 'masks', 'series_uid']
    b = load_lidc_npz(dest)
    assert all(np.array_equal(a[k], b[k]) for k in ('images', 'masks', 'series_uid', 'keys'))


def test_png_round_trip(arrays, tmp_path):
    arrays['images'] = np.round(arrays['images'] * 255) / 255  # exactly representable in 8 bits
    write_lidc_pngs(arrays, tmp_path/'train')
    c = load_lidc_pngs(tmp_path)  # finds train/ below the root
    assert np.array_equal(c['masks'], arrays['masks'])
    assert np.allclose(c['images'], arrays['images'], atol=1e-6)
    assert list(c['series_uid']) == list(arrays['series_uid']) and c['skipped'] == []
    ds = LIDCDataset(tmp_path, annotator=2)
    assert ds.case_ids == ['s1', 's1', 's2', 's3', 's3']
    assert torch.equal(ds[3][1][0], torch.from_numpy(arrays['masks'][3, 2]).float())


def test_png_masks_0_1_accepted(arrays, tmp_path):
    write_lidc_pngs(arrays, tmp_path)
    p = tmp_path/'gt'/'s1'/'c0_slice0_l0.png'
    Image.fromarray(arrays['masks'][0, 0]).save(p)  # 0/1 instead of 0/255
    assert np.array_equal(load_lidc_pngs(tmp_path)['masks'][0, 0], arrays['masks'][0, 0])


# --- annotator choices -------------------------------------------------------------------------------------
def test_annotator_choices(arrays):
    m = arrays['masks'][2]  # readers 0, 1, 2 mark, reader 3 does not
    get = lambda a: LIDCDataset(arrays, annotator=a)[2][1].numpy()
    assert np.array_equal(get('all'), m)
    assert np.array_equal(get('majority')[0], (m.sum(0) >= 3).astype(np.float32))
    assert np.allclose(get('mean')[0], m.mean(0))
    assert np.array_equal(get(-1)[0], m[3]) and np.array_equal(get(0)[0], m[0])


def test_random_annotator_draws_again_and_is_seeded(arrays):
    ds = LIDCDataset(arrays, annotator='random')
    torch.manual_seed(0); a = [ds[1][1].sum().item() for _ in range(30)]
    torch.manual_seed(0); b = [ds[1][1].sum().item() for _ in range(30)]
    assert a == b and set(a) == {0., 9., 12.}  # readers 0 and 1 mark crop 1 (3x3 and 4x3), readers 2 and 3 do not


def test_random_annotator_differs_between_workers(arrays):
    masks = np.zeros((5, 4, 8, 8), np.uint8)
    for k in range(4): masks[:, k].reshape(5, -1)[:, :8 * k] = 1  # reader k marks 8k pixels
    ds = LIDCDataset(dict(arrays, masks=masks), annotator='random')
    dl = DataLoader(torch.utils.data.Subset(ds, [0] * 32), batch_size=4, num_workers=2,
                    generator=torch.Generator().manual_seed(0))
    sums = [y.sum((1, 2, 3)).tolist() for _, y in dl]  # batches alternate between the two workers
    assert set(sum(sums, [])) == {0., 8., 16., 24.}
    assert sums[0::2] != sums[1::2]


def test_item_info(arrays):
    info = LIDCDataset(arrays).item_info(3)
    assert info['case_id'] == 's3' and info['key'] == 'c3_slice3' and info['annotators_marking'] == 4
    assert info['annotator_masks'].dtype == np.uint8 and info['annotator_masks'].shape == (4, 8, 8)
    assert info['foreground_fraction'] == pytest.approx(arrays['masks'][3].mean())


# --- bad input ---------------------------------------------------------------------------------------------
def test_untrusted_pickle_is_not_opened(arrays, tmp_path):
    class Boom:
        def __reduce__(self): return (os.system, ('echo should-not-run',))
    with open(tmp_path/'evil.pickle', 'wb') as f: pickle.dump({'x': Boom()}, f)
    for call in (lambda: load_lidc_pickle(tmp_path/'evil.pickle'), lambda: LIDCDataset(tmp_path/'evil.pickle'),
                 lambda: lidc_pickle_to_npz(tmp_path/'evil.pickle')):
        with pytest.raises(FileProblem, match=r"evil\.pickle: not loaded: unpickling a file can run code .* trusted=True"):
            call()


def test_wrong_annotator_index(arrays):
    with pytest.raises(ValueError, match="annotator=4 is out of range: this data has 4 annotators"):
        LIDCDataset(arrays, annotator=4)
    with pytest.raises(ValueError, match="annotator='avg' is not valid"):
        LIDCDataset(arrays, annotator='avg')


def test_truncated_files(arrays, tmp_path):
    src = _write_pickle(arrays, tmp_path/'d.pickle')
    src.write_bytes(src.read_bytes()[:200])
    with pytest.raises(FileProblem, match=r"d\.pickle: cannot unpickle .* truncated"):
        load_lidc_pickle(src, trusted=True)
    npz = save_lidc_npz(arrays, tmp_path/'d.npz')
    npz.write_bytes(npz.read_bytes()[:300])
    with pytest.raises(FileProblem, match=r"d\.npz: cannot read the \.npz"):
        load_lidc_npz(npz)


def test_pickle_with_wrong_content(arrays, tmp_path):
    bad = {'k': dict(image=np.zeros((8, 8)), masks=[np.zeros((8, 8))] * 3 + [np.zeros((4, 4))], series_uid='s')}
    with open(tmp_path/'b.pickle', 'wb') as f: pickle.dump(bad, f)
    with pytest.raises(FileProblem, match=r"b\.pickle: crop 'k': masks of shapes .* differ from its image \(8, 8\)"):
        load_lidc_pickle(tmp_path/'b.pickle', trusted=True)
    with open(tmp_path/'c.pickle', 'wb') as f: pickle.dump([1, 2], f)
    with pytest.raises(FileProblem, match="expected a non-empty dict of crops, got list"):
        load_lidc_pickle(tmp_path/'c.pickle', trusted=True)


def test_non_binary_masks_in_arrays(arrays):
    arrays['masks'][1, 2, 0, 0] = 3
    with pytest.raises(FileProblem, match=r"masks of crop c1_slice1 are not binary"):
        LIDCDataset(arrays)


def test_png_layout_problems(arrays, tmp_path):
    write_lidc_pngs(arrays, tmp_path)
    (tmp_path/'images'/'s2'/'c2_slice2.png').unlink()
    with pytest.raises(FileProblem, match=r"c2_slice2_l0\.png: mask without an image \(no images/s2/c2_slice2\.png\)"):
        load_lidc_pngs(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path/'images'/'s2'/'c2_slice2.png')
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path/'gt'/'s2'/'c2_slice2_l1.png')
    with pytest.raises(FileProblem, match=r"c2_slice2_l1\.png: mask is 6x6 but its image .*c2_slice2\.png is 8x8"):
        load_lidc_pngs(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path/'images'/'s3'/'c9_slice9.png')  # no masks at all
    with pytest.warns(UserWarning, match=r"load_lidc_pngs skipped 2 file\(s\)"):
        c = load_lidc_pngs(tmp_path, on_error='skip')
    assert len(c['images']) == 4 and {Path(p).name for p, _ in c['skipped']} == {'c2_slice2_l1.png', 'c9_slice9.png'}


def test_empty_and_unknown_sources(tmp_path):
    with pytest.raises(FileProblem, match="no LIDC crops found"):
        LIDCDataset(tmp_path)
    (tmp_path/'x.h5').write_bytes(b'')
    with pytest.raises(FileProblem, match=r"x\.h5: expected a \.pickle, a \.npz or a folder"):
        LIDCDataset(tmp_path/'x.h5')
    with pytest.raises(FileProblem, match=r"missing arrays \['masks', 'series_uid'\]"):
        check_lidc_arrays(dict(images=np.zeros((1, 2, 2))))
