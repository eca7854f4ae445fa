"""The LGG quality goal of issue 7: mean per-case 3D Dice on held-out patients after a fixed training time.

    OMP_NUM_THREADS=2 python benchmarks/lgg_quality.py [--minutes 30] [--size 128] [--features 16,32,64,128]
                                                       [--val-cases 7] [--data PATH] [--out DIR]
                                                       [--augment none|flip|default] [--missing P] [--normalize none|zscore]
                                                       [--crop none|brain] [--tta] [--lr LR] [--grad-clip C] [--seed S]

The best recipe so far (mean per-case Dice 0.758 and 0.750 in 30 minutes on 2 cores, training seeds 0 and 1), on a full-size pack
(`segcourse pack --data lgg:../shared/data/lgg-dev/kaggle_3m --size 256 --out lgg-dev-256.npz`; the crop needs
the full size):

    OMP_NUM_THREADS=2 python benchmarks/lgg_quality.py --data lgg-dev-256.npz --features 8,16,32,64,128 --threads 2 \
        --augment default --missing 0.3 --normalize zscore --crop brain --tta --lr 1e-3 --grad-clip 1

Protocol: the `lgg-dev` patients (env `SEGCOURSE_SHARED_DATA`, else `../shared/data`; or `--data`: a
`kaggle_3m` folder or a `.npz` from `segcourse pack`) split by patient with `split_by_case` (seed 0,
stratified by lesion), `--val-cases` patients held out. The epochs are planned by `fit(..., fit_to_time=True)`
from the pace of the epochs so far, so that the one-cycle schedule ends annealed within `--minutes`.
Reported: wall minutes, epochs, and the Dice of every validation patient computed in 3D (all its
slices' confusion counts summed), with the mean and the median, raw and after keeping the largest
connected component of each patient's predicted volume (`segcourse.metrics.lesions.largest_per_case`). Prints the
machine load: figures from a shared machine are not comparable.

Two of the 7 validation patients (TCGA_FG_A60K, TCGA_HT_A61B) are FLAIR in all three channels: the data
set fills a missing sequence with FLAIR, and only one training patient has a missing sequence at all.
`--missing P` trains with `MissingSequence` (pre- and post-contrast each replaced by FLAIR with chance P)
so that the model has seen such cases; `--normalize zscore` standardises every slice and channel, for
patients whose intensities are on another scale (TCGA_HT_A61B is about half as bright as the rest).
TCGA_FG_A60K also shows its brain smaller than the others (it spans 202 of 256 pixels, the median patient 240):
`--crop brain` cuts every patient to a square around its brain before resizing (the preprocessing of Buda et
al. 2019, on FLAIR; `segcourse.data.crops.CroppedCases`, as `segcourse train --crop brain`), and the predictions are
put back on the full grid (`uncrop_items`), so the Dice is computed against the same masks as without cropping
(cropping and putting back the true masks alone gives a mean Dice of 0.974). `--tta` averages the final
predictions with those of the mirrored images (`predict(..., tta=True)`, as `segcourse evaluate --tta`).

The same recipe from the command line (7 of the 39 patients held out is `--val-fraction 0.1794871795`, the
same split; evaluate `last.pt`, since `best.pt` was chosen on these validation patients):

    OMP_NUM_THREADS=2 SEGCOURSE_THREADS=2 segcourse train --data packed:lgg-dev-256.npz --size 128 \
        --val-fraction 0.1794871795 --features 8,16,32,64,128 --augment --missing-sequence 0.3 --normalize zscore \
        --crop brain --lr 1e-3 --grad-clip 1 --epochs 150 --time-limit 29.5 --fit-to-time --out lgg-run
    segcourse evaluate --checkpoint lgg-run/last.pt --tta --largest

Measured so, 2 cores, one run each, mean per-case Dice with `--tta` (without):
- session 5, `--epochs 55` instead of `--fit-to-time`: 0.805 (0.789) for `--seed 0`, 0.804 (0.775) for `--seed 1
  --split-seed 0`, 0.788 (0.818) for `--seed 1`, which also draws another split; 54 or 55 epochs in 28 to 29.3 minutes.
- session 6, `--seed 0`: 0.805 (0.789) with `--epochs 55` (17.9 minutes on a faster machine); 0.795 (0.778) with
  `--fit-to-time`, 77 epochs in 29.5 minutes; with `--context 1` (2.5D), 0.797 (0.806) in 55 epochs and 0.793 (0.796)
  in 49 (a first `--fit-to-time` that could only shorten its plan: 21 minutes); 0.793 (0.790) with `--fit-to-time
  --batch-size 8`, 80 epochs. Keeping each patient's largest component (`--largest`) raised every one of these, by
  0.002 to 0.04, to at most 0.815 with `--tta` (0.825 without).
- session 7, `--fit-to-time`: 0.797 (0.775) with `--norm instance`, 68 epochs (0.806 (0.801) with `--largest`). Two runs trained
  side by side on one thread each (`--seed 0` and `--seed 1 --split-seed 0`, 44 epochs each in the same 29.5 minutes) and
  evaluated as an ensemble (`segcourse evaluate --checkpoint ens0/last.pt ens1/last.pt --tta --largest`): 0.807
  (0.803), members alone 0.797 and 0.805 (0.779 and 0.805); with `--largest` 0.818 (0.812).
  Batch Dice instead of per-slice Dice (`--loss-option per_image=false`), 79 epochs: 0.736 (0.717), with `--largest` 0.764
  (0.754), worse than every per-slice run.
- session 8, `--fit-to-time`: a wider U-Net (`--features 12,24,48,96,192`, 2.2 times the weights, 27 epochs) 0.806 (0.801), with
  `--largest` 0.806 (0.812); the Dice loss alone (`--loss dice`, 53 epochs) 0.808 (0.798), with `--largest` 0.809 (0.802); the
  strong augmentation preset (`--augment strong`: zoom ±20%, rotation ±30°, shifts, blur, bias field; 51 epochs) 0.776 (0.742),
  with `--largest` 0.754 (0.745): TCGA_CS_5397, the smallest tumour, fell to 0.43 (0.27 with `--largest`), while the median
  patient rose to 0.849, the best median so far; AdamW with weight decay (`--opt adamw --weight-decay 0.01`, 59 epochs) 0.801
  (0.776), with `--largest` 0.811 (0.806).
- session 9, five-fold cross-validation by patient of the session-6 recipe (`--folds 5 --fold I` instead of `--val-fraction`,
  31 or 32 training patients, `--fit-to-time`; `segcourse evaluate --cross-validation --tta --largest`): folds 0 to 3 scored
  0.675, 0.821, 0.730 and 0.848 with `--tta` (43, 48, 53 and 58 epochs; 0.612, 0.821, 0.726 and 0.848 with `--largest`). Over
  their 32 patients: mean 0.769, median 0.836 (with `--largest` 0.752 and 0.836). By hospital: 7 CS patients 0.54, 8 DU 0.78,
  8 FG 0.87, 9 HT 0.85; none of the CS patients has a missing sequence. Fold 4 was not finished in the session.
"""
import argparse, os, time
from pathlib import Path

import numpy as np
import torch

from segcourse.metrics.accumulate import case_dice
from segcourse.core import set_threads
from segcourse.data.crops import CroppedCases, uncrop_items
from segcourse.metrics.lesions import largest_per_case
from segcourse.data.lgg import LGGDataset
from segcourse.models.registry import get_model
from segcourse.data.packed import PackedDataset
from segcourse.data.splits import split_by_case, subsets
from segcourse.training.loop import fit
from segcourse.inference.predict import predict
from segcourse.data.transforms import Compose, RandomFlip
from segcourse.data.intensity import MissingSequence, ZScore, default_augmentation

def shared_lgg() -> Path:
    root = Path(os.environ.get('SEGCOURSE_SHARED_DATA') or Path(__file__).resolve().parents[2]/'shared'/'data')
    return root/'lgg-dev'/'kaggle_3m'

def per_case_dice(probs, targets, case_ids, largest=False) -> dict:
    "3D Dice per case at threshold 0.5, of the whole prediction or of each case's largest connected component."
    pred = probs >= 0.5
    return case_dice((largest_per_case(pred, case_ids) if largest else pred).float(), targets, case_ids)

def make_augment(a, seed:int=0):
    "A fresh batch augmentation of the arguments (its own random draws), or None."
    ts = {'none': [], 'flip': [RandomFlip(horizontal=0.5)], 'default': list(default_augmentation().transforms)}[a.augment]
    if a.missing > 0: ts.insert(0, MissingSequence(keep=1, p=a.missing))
    return Compose(ts, seed=seed, batch=True) if ts else None

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--minutes', type=float, default=30.0)
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--features', default='16,32,64,128')
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--grad-clip', type=float, default=None, help="clip the gradient norm to this (default: no clipping)")
    ap.add_argument('--val-cases', type=int, default=7)
    ap.add_argument('--seed', type=int, default=0, help="seed of the training (weights, sampling); the split stays that of seed 0")
    ap.add_argument('--data', default=None)
    ap.add_argument('--out', default=None)
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--augment', choices=('none', 'flip', 'default'), default='none',
                    help="batch augmentation: none, left-right flips, or default_augmentation (zoom, rotation, flips, intensity)")
    ap.add_argument('--normalize', choices=('none', 'zscore'), default='none',
                    help="zscore: standardise each slice and channel (ZScore) in training and validation")
    ap.add_argument('--crop', choices=('none', 'brain'), default='none',
                    help="brain: cut every case to a square around its brain (FLAIR above 10%% of its maximum) before resizing, "
                         "as Buda et al. do, and put the predictions back on the full grid for the Dice")
    ap.add_argument('--tta', action='store_true', help="average the final predictions with those of the left-right mirrored images")
    ap.add_argument('--missing', type=float, default=0.0,
                    help="MissingSequence chance: each of pre- and post-contrast replaced by FLAIR, as the data set fills a missing sequence")
    a = ap.parse_args()
    set_threads(a.threads)
    src = Path(a.data) if a.data else shared_lgg()
    if not src.exists(): raise SystemExit(f"no LGG data at {src}: pass --data or set SEGCOURSE_SHARED_DATA")
    norm = ZScore() if a.normalize == 'zscore' else None
    if a.crop == 'none':
        ds = PackedDataset(src, size=a.size, transform=norm) if src.suffix == '.npz' else LGGDataset(src, size=a.size, cache=True, transform=norm)
    else:  # brain: read at the stored size, crop, then resize
        native = PackedDataset(src) if src.suffix == '.npz' else LGGDataset(src, cache=True)
        ds = CroppedCases(native, a.size, channel=1, transform=norm)  # FLAIR
        sides = np.array([b[2] for b in ds.boxes.values()])
        print(f"brain boxes: side {sides.min()} to {sides.max()} (median {np.median(sides):.0f}) of {native.raw(0)[0].shape[0]} pixels")
    n_cases = len(set(ds.case_ids))
    split = split_by_case(ds, {'train': 1 - a.val_cases / n_cases, 'val': a.val_cases / n_cases}, seed=0, stratify='lesion')
    parts = subsets(ds, split)
    train, val = parts['train'], parts['val']
    print(f"{len(train)} training slices of {len(set(train.case_ids))} patients, {len(val)} validation slices of "
          f"{len(set(val.case_ids))} patients, {a.size}x{a.size}, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    for i in range(len(ds)): ds.raw(i)  # decode once into the cache (counted in the budget)
    features = tuple(int(f) for f in a.features.split(','))
    model = get_model('unet', in_channels=3, features=features)
    augment = make_augment(a, a.seed)
    print(f"augmentation: {augment}")
    history = fit(model, train, val, loss='dice_bce', augment=augment, epochs=1000, batch_size=a.batch_size, lr=a.lr, schedule='onecycle',
                  lesion_share=0.5, output_prior=0.01, grad_clip=a.grad_clip, detailed=True, time_limit=a.minutes - (time.perf_counter() - t0) / 60,
                  fit_to_time=True, out=a.out, progress=False, seed=a.seed)  # the epochs that fit in the budget
    minutes = (time.perf_counter() - t0) / 60
    probs = predict(model, val, tta=a.tta)
    if a.crop == 'brain': probs, targets = uncrop_items(probs, val, a.size)  # back on the full grid, with its masks
    else: targets = torch.stack([val[i][1] for i in range(len(val))])
    for largest in (False, True):
        d = per_case_dice(probs, targets, val.case_ids, largest)
        v = np.array(list(d.values()))
        print(f"{'largest component' if largest else 'raw':<18} per-case 3D Dice mean {v.mean():.3f} median {np.median(v):.3f} "
              f"min {v.min():.3f}: " + ', '.join(f'{x:.2f}' for x in v))
    print(f"{len(history)} epochs in {minutes:.1f} min (budget {a.minutes:g}); best validation per-case mean during training "
          f"{max(h['val_dice_case_mean'] for h in history):.3f}; load {os.getloadavg()[0]:.1f}")

if __name__ == '__main__':
    main()
