"""NIfTI volumes from end to end, as a user meets them: an nnU-Net raw dataset and the LGG sample stacked into
volumes, trained, evaluated in millimetres and predicted back into the scanner's geometry from the command line."""
import json
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip('nibabel')
from data_paths import needs, sample
from cli_helpers import run_in_process as run

from segcourse.data import LGGDataset, NiftiDataset, nifti_cases, write_phantom_nifti, write_volume

def ok(r):
    assert r.returncode == 0, r.stderr[-2000:]
    return r

QUICK = ['--quick', '--no-progress', '--epochs', '1', '--size', '32']
SPACING = (0.9, 0.9, 3.0)  # anisotropic, as most scans: the coarsest axis (2) is the slicing axis

def write_nnunet(root:Path, n_cases:int=4) -> Path:
    "An nnU-Net raw dataset of phantom volumes: two channels, labels 0-2 (a halo 1 around each lesion core 2), 32 x 32 x 6 voxels."
    return write_phantom_nifti(root, n_cases=n_cases, slices=6, size=32, spacing=SPACING, seed=2)

@pytest.fixture(scope='module')
def nnunet(tmp_path_factory): return write_nnunet(tmp_path_factory.mktemp('raw')/'Dataset001_Phantoms')

@pytest.fixture(scope='module')
def nifti_run(nnunet, tmp_path_factory):
    out = tmp_path_factory.mktemp('run')/'run'
    r = ok(run('train', *QUICK, '--data', f'nifti:{nnunet}', '--val-fraction', '0.25', '--out', out))
    return out, r

def test_an_nnunet_dataset_trains_from_the_command_line(nifti_run):
    out, r = nifti_run
    assert 'trained 1 epoch(s)' in r.stdout and (out/'best.pt').exists()
    split = json.loads((out/'config.json').read_text())
    assert split['run']['data'].startswith('nifti:')

def test_the_split_keeps_each_volume_whole(nnunet):
    from segcourse.config import RunConfig
    from segcourse.data import load_splits
    sp = load_splits(RunConfig.quick(data=f'nifti:{nnunet}', size=32, val_fraction=0.25))
    assert set(sp['train'].case_ids).isdisjoint(sp['val'].case_ids)
    assert len(sp['train']) + len(sp['val']) == 4 * 6  # every slice of every volume, along the coarsest axis

def test_evaluate_reports_per_case_figures_in_millimetres(nifti_run):
    out, _ = nifti_run
    r = ok(run('evaluate', '--checkpoint', out/'best.pt'))
    assert 'on its grid: Dice' in r.stdout and 'HD95' in r.stdout and 'mm' in r.stdout

def test_predict_writes_label_maps_in_the_scanners_geometry(nifti_run, nnunet, tmp_path):
    out, _ = nifti_run
    ts = tmp_path/'imagesTs'; ts.mkdir()
    turned = np.array([[0., -0.7, 0., 31.], [0.7, 0., 0., -5.], [0., 0., 2.0, 11.], [0., 0., 0., 1.]])
    for c in range(2):  # a case of its own shape, spacing and orientation
        data = np.asarray(nib.load(str(nnunet/'imagesTr'/f'phantoms_000_{c:04d}.nii.gz')).dataobj)[:28, :30, :5]
        nib.save(nib.Nifti1Image(data, turned), ts/f'new_{c:04d}.nii.gz')
    r = ok(run('predict', '--checkpoint', out/'best.pt', '--input', ts, '--out', tmp_path/'pred', '--probabilities', '--no-progress'))
    assert 'label maps and probabilities of 1 volume(s)' in r.stdout
    source, written = nib.load(str(ts/'new_0000.nii.gz')), nib.load(str(tmp_path/'pred'/'new.nii.gz'))
    assert written.shape == source.shape == (28, 30, 5)
    assert np.array_equal(written.affine, source.affine) and written.header.get_zooms() == source.header.get_zooms()
    labels = np.asarray(written.dataobj)
    prob = np.asarray(nib.load(str(tmp_path/'pred'/'new_prob.nii.gz')).dataobj)
    assert labels.dtype == np.uint8 and np.array_equal(labels, (prob >= 0.5).astype(np.uint8))

def test_a_label_map_round_trip_is_exact(nnunet, tmp_path):
    "Labels written with `write_volume` in the geometry of their image read back identical: values, shape and affine."
    labels = np.asarray(nib.load(str(nnunet/'labelsTr'/'phantoms_001.nii.gz')).dataobj)
    path = write_volume(labels, nnunet/'imagesTr'/'phantoms_001_0000.nii.gz', tmp_path/'phantoms_001.nii.gz')
    back, image = nib.load(str(path)), nib.load(str(nnunet/'imagesTr'/'phantoms_001_0000.nii.gz'))
    assert np.array_equal(np.asarray(back.dataobj), labels) and np.array_equal(back.affine, image.affine) and back.shape == image.shape

def test_one_class_of_several_is_the_foreground(nnunet):
    core, every = NiftiDataset(nnunet, label=2), NiftiDataset(nnunet)
    assert sum(int(core[i][1].sum()) for i in range(len(core))) < sum(int(every[i][1].sum()) for i in range(len(every)))

@pytest.mark.parametrize('edit, message', [
    (lambda r: (r/'imagesTr'/'phantoms_002_0001.nii.gz').unlink(), 'phantoms_002 has no channel file phantoms_002_0001.nii.gz'),
    (lambda r: (r/'labelsTr'/'phantoms_001.nii.gz').write_bytes(b'\x1f\x8b' + b'x' * 30), 'phantoms_001.nii.gz: cannot be read as NIfTI'),
    (lambda r: nib.save(nib.Nifti1Image(np.full((32, 32, 6), 5, np.uint8), np.diag([*SPACING, 1.])), r/'labelsTr'/'phantoms_000.nii.gz'),
     'label value(s) [5] that dataset.json does not declare'),
])
def test_bad_volumes_are_named_from_the_command_line(edit, message, tmp_path):
    root = write_nnunet(tmp_path/'Dataset002_Phantoms', n_cases=3)
    edit(root)
    r = run('train', *QUICK, '--data', f'nifti:{root}', '--out', tmp_path/'run')
    assert r.returncode == 2 and message in r.stderr, r.stderr[-1500:]

@needs('lgg-sample')
def test_the_lgg_sample_as_volumes(tmp_path):
    "The LGG sample's slices stacked into one volume per patient (three channel files, an assumed 1 x 1 x 3 mm spacing) read back slice for slice."
    lgg = LGGDataset(sample('lgg-sample'))
    root = tmp_path/'lgg-volumes'/'imagesTr'; root.mkdir(parents=True); (root.parent/'labelsTr').mkdir()
    for case in sorted(set(lgg.case_ids)):
        idx = [i for i, c in enumerate(lgg.case_ids) if c == case]
        images, masks = zip(*(lgg.raw(i) for i in idx))
        volume, labels = np.stack(images, 2), np.stack([m[0] for m in masks], 2)  # H W D C, H W D
        for c in range(3): nib.save(nib.Nifti1Image(volume[..., c], np.diag([1., 1., 3., 1.])), root/f'{case}_{c:04d}.nii.gz')
        nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([1., 1., 3., 1.])), root.parent/'labelsTr'/f'{case}.nii.gz')
    ds = NiftiDataset(root.parent)
    assert len(ds) == len(lgg) and sorted(set(ds.case_ids)) == sorted(set(lgg.case_ids))
    first = ds.case_ids.index(lgg.case_ids[0])
    assert np.array_equal(ds[first][1].numpy(), lgg[0][1].numpy())  # the masks, slice for slice
    assert ds.item_info(first)['spacing'] == (1., 1., 3.)
    cases, _ = nifti_cases(root.parent)
    assert all(len(files) == 3 for files, _ in cases.values())

def test_volumes_pack_into_one_file(nnunet, tmp_path):
    from segcourse.data import PackedDataset
    r = ok(run('pack', '--data', f'nifti:{nnunet}', '--size', '32', '--out', tmp_path/'volumes.npz', '--no-progress'))
    assert 'packed 24 slices of 4 cases' in r.stdout
    packed, volumes = PackedDataset(tmp_path/'volumes.npz'), NiftiDataset(nnunet)
    assert packed.case_ids == volumes.case_ids
    assert np.allclose(packed[5][0].numpy(), volumes[5][0].numpy()) and np.array_equal(packed[5][1].numpy(), volumes[5][1].numpy())


@pytest.fixture(scope='module')
def classes_run(nnunet, tmp_path_factory):
    out = tmp_path_factory.mktemp('classes')/'run'
    r = ok(run('train', *QUICK, '--data', f'nifti:{nnunet}', '--classes', '2', '--val-fraction', '0.25', '--out', out))
    return out, r

def test_three_classes_train_and_evaluate_from_the_command_line(classes_run):
    out, r = classes_run
    cfg = json.loads((out/'config.json').read_text())
    assert (cfg['run']['classes'], cfg['run']['loss'], cfg['model']['kwargs']['out_channels']) == (2, 'dice_ce', 3)
    history = json.loads((out/'history.json').read_text())
    assert {'val_dice_class1', 'val_dice_class2'} <= set(history[-1] if isinstance(history, list) else history['history'][-1])
    ev = ok(run('evaluate', '--checkpoint', out/'last.pt')).stdout
    for expected in ('halo', 'core', 'mean of classes', 'HD95 mm', 'Dice per case and class'): assert expected in ev, ev

def test_several_classes_predict_label_maps(classes_run, nnunet, tmp_path):
    out, _ = classes_run
    image = nnunet/'imagesTr'/'phantoms_000_0000.nii.gz'
    ok(run('predict', '--checkpoint', out/'last.pt', '--input', image, '--out', tmp_path/'pred', '--probabilities', '--no-progress'))
    written, source = nib.load(str(tmp_path/'pred'/'phantoms_000.nii.gz')), nib.load(str(image))
    assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
    assert nib.load(str(tmp_path/'pred'/'phantoms_000_prob.nii.gz')).shape == (*source.shape, 3)  # background, halo, core

@pytest.mark.parametrize('args, message', [
    (['--classes', '3'], "declares 3 labels"),
    (['--classes', '2', '--loss', 'focal'], "loss 'focal' is binary"),
    (['--classes', '2', '--label', '1'], "cannot go with classes=2"),
    (['--loss', 'dice_ce'], "is for several classes"),
])
def test_several_classes_refuse_what_does_not_fit(nnunet, tmp_path, args, message):
    r = run('train', *QUICK, '--data', f'nifti:{nnunet}', *args, '--out', tmp_path/'run')
    assert r.returncode != 0 and message in r.stderr, r.stderr[-1000:]

def test_class_weights_from_the_command_line(nnunet, tmp_path):
    out = tmp_path/'run'
    ok(run('train', *QUICK, '--data', f'nifti:{nnunet}', '--classes', '2', '--loss-option', 'class_weights=0.2,1,3', '--val-fraction', '0.25', '--out', out))
    assert json.loads((out/'config.json').read_text())['run']['loss_options'] == {'class_weights': [0.2, 1.0, 3.0]}
    r = run('train', *QUICK, '--data', f'nifti:{nnunet}', '--classes', '2', '--loss-option', 'class_weights=1,2', '--out', tmp_path/'bad')
    assert r.returncode != 0 and '3 finite numbers' in r.stderr, r.stderr[-1000:]

def test_binary_tools_refuse_several_classes():
    import torch
    from segcourse.metrics import select_threshold
    from segcourse.models.prob_unet import ProbUNet
    probs, target = torch.rand(2, 3, 8, 8), torch.zeros(2, 3, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match='channels'): select_threshold(probs, target)
    with pytest.raises(ValueError, match='binary'): ProbUNet(out_channels=3)

def test_classes_need_label_maps_of_nifti_data(tmp_path):
    r = run('train', *QUICK, '--classes', '2', '--out', tmp_path/'run')
    assert r.returncode != 0 and 'reads label maps of NIfTI volumes' in r.stderr, r.stderr[-1000:]
