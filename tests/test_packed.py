"""Packed data sets: a `.npz` copy of a file data set gives the same items, feeds `segcourse train`, and
bad files get errors that name them."""
import os
from pathlib import Path

import numpy as np
import pytest
from data_paths import needs, sample
import torch

from segcourse.data import LGGDataset, write_lgg_case, PackedDataset, pack_dataset, FileProblem, load_splits, parse_data

from cli_helpers import run_in_process
from segcourse.config import RunConfig

torch.set_num_threads(1)
ROOT = Path(__file__).parents[1]
LGG_SAMPLE = sample('lgg-sample') or Path('lgg-sample-not-found')

@pytest.fixture(scope='module')
def lgg_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('lgg')/'kaggle_3m'
    rng = np.random.default_rng(1)
    for k in range(4):
        masks = np.zeros((5, 80, 80), np.uint8); masks[1:4, 20 + k:40 + k, 30:50] = 1
        write_lgg_case(root, f'TCGA_C{k}_000{k}_20000101', rng.integers(0, 256, (5, 80, 80, 3), dtype=np.uint8), masks)
    return root

def test_round_trip_with_uint8_and_resizing(lgg_folder, tmp_path):
    ds = LGGDataset(lgg_folder, size=48, uint8=True)
    packed = PackedDataset(pack_dataset(ds, tmp_path/'p.npz'), uint8=True)
    assert len(packed) == len(ds) == 20 and packed.case_ids == ds.case_ids
    for i in (0, 7, 19):
        assert torch.equal(packed[i][0], ds[i][0]) and packed[i][0].dtype == torch.uint8
        assert torch.equal(packed[i][1], ds[i][1])
    assert PackedDataset(tmp_path/'p.npz', size=24)[3][0].shape == (3, 24, 24)

def test_no_temporary_file_is_left(lgg_folder, tmp_path):
    pack_dataset(LGGDataset(lgg_folder, size=32), tmp_path/'q.npz')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['q.npz']

def test_items_of_different_sizes_are_refused(tmp_path):
    class Mixed(LGGDataset):
        def __init__(self): self.items, self.size, self._cache, self.cache = [('a', 0), ('b', 1)], None, {}, False
        def raw(self, i): return np.zeros((8 + i, 8, 3), np.uint8), np.zeros((1, 8 + i, 8), np.uint8)
        @property
        def case_ids(self): return ['a', 'b']
    with pytest.raises(ValueError, match='size='):
        pack_dataset(Mixed(), tmp_path/'m.npz')

def test_pack_refuses_a_dataset_without_raw(tmp_path):
    from segcourse.data.phantoms import PhantomDataset
    with pytest.raises(TypeError, match='PhantomDataset'):
        pack_dataset(PhantomDataset(n=2, size=32), tmp_path/'x.npz')

def test_bad_annotator_is_refused_up_front(lgg_folder, tmp_path):
    path = pack_dataset(LGGDataset(lgg_folder, size=32), tmp_path/'a.npz')
    with pytest.raises(ValueError, match='annotator'):
        PackedDataset(path, annotator=3)

def test_run_config_splits_a_packed_file_by_case(lgg_folder, tmp_path):
    path = pack_dataset(LGGDataset(lgg_folder, size=32), tmp_path/'lgg32.npz')
    assert parse_data(f'packed:{path}') == ('packed', path)
    assert parse_data(str(path)) == ('packed', path)
    with pytest.raises(FileNotFoundError, match='no such file'):
        parse_data(f'packed:{tmp_path}/missing.npz')
    splits = load_splits(RunConfig(data=f'packed:{path}', size=32, val_fraction=0.25))
    train, val = set(splits['train'].case_ids), set(splits['val'].case_ids)
    assert train and val and not train & val and len(train | val) == 4

def test_segcourse_train_on_a_packed_file(lgg_folder, tmp_path):
    path = pack_dataset(LGGDataset(lgg_folder, size=32), tmp_path/'lgg32.npz')
    r = run_in_process('train', '--data', f'packed:{path}', '--quick', '--no-progress', '--epochs', '1', '--size', '32', '--out', tmp_path/'run')
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path/'run'/'last.pt').is_file()

@needs('lgg-sample')
def test_real_lgg_sample_packs_losslessly(tmp_path):
    ds = LGGDataset(LGG_SAMPLE)
    packed = PackedDataset(pack_dataset(ds, tmp_path/'sample.npz'))
    assert packed.case_ids == ds.case_ids
    for i in range(0, len(ds), 11):
        assert torch.equal(packed[i][0], ds[i][0]) and torch.equal(packed[i][1], ds[i][1])

def test_segcourse_pack_writes_a_file_train_can_read(lgg_folder, tmp_path):
    def pack(*args): return run_in_process('pack', *args)
    r = pack('--data', f'lgg:{lgg_folder}', '--size', '40', '--out', str(tmp_path/'c.npz'), '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'packed 20 slices of 4 cases at 40x40' in r.stdout
    assert PackedDataset(tmp_path/'c.npz')[0][0].shape == (3, 40, 40)
    r = pack('--data', 'phantom', '--out', str(tmp_path/'d.npz'))
    assert r.returncode == 2 and 'lgg:PATH, folder:PATH or nifti:PATH' in r.stderr and 'Traceback' not in r.stderr

def test_segcourse_pack_in_parts_and_train_on_the_folder(lgg_folder, tmp_path):
    one_case = pack_dataset(LGGDataset(lgg_folder, size=32, cases=['TCGA_C0_0000_20000101']), tmp_path/'one.npz').stat().st_size / 2**20
    r = run_in_process('pack', '--data', f'lgg:{lgg_folder}', '--size', '32', '--out', str(tmp_path/'parts'),
                       '--max-mib', f'{2.5 * one_case:.6f}', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'into' in r.stdout and '2 parts of' in r.stdout  # 4 cases, 2 per part
    whole, parts = PackedDataset(pack_dataset(LGGDataset(lgg_folder, size=32), tmp_path/'whole.npz')), PackedDataset(tmp_path/'parts')
    assert parts.case_ids == whole.case_ids and all(torch.equal(parts[i][0], whole[i][0]) for i in range(len(whole)))
    assert parse_data(f'packed:{tmp_path/"parts"}') == ('packed', tmp_path/'parts')
    r = run_in_process('train', '--data', f'packed:{tmp_path/"parts"}', '--quick', '--no-progress', '--epochs', '1', '--size', '32',
                       '--val-fraction', '0.25', '--out', tmp_path/'run')
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_in_process('pack', '--data', f'lgg:{lgg_folder}', '--size', '32', '--out', str(tmp_path/'parts'), '--max-mib', '50')
    assert r.returncode == 2 and 'already holds .npz files' in r.stderr and 'Traceback' not in r.stderr

def test_a_damaged_part_is_named(lgg_folder, tmp_path):
    folder = pack_dataset(LGGDataset(lgg_folder, size=32), tmp_path/'parts', max_mib=50)
    (folder/'part-002.npz').write_bytes((folder/'part-001.npz').read_bytes()[:300])
    with pytest.raises(FileProblem, match='part-002.npz'):
        PackedDataset(folder)
    (folder/'part-002.npz').unlink()
    (folder/'part-001.npz').unlink()
    with pytest.raises(FileNotFoundError, match='holds no .npz parts'):
        PackedDataset(folder)
