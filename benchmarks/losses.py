"""Speed of segcourse's losses against baselines measured in the same run (issue 5).

    OMP_NUM_THREADS=1 python benchmarks/losses.py [--repeats 5] [--batch 16] [--size 256]

Each case prints the best-of-`repeats` time of segcourse and of each baseline and their ratio (baseline time /
segcourse time: above 1 means segcourse is faster). The issue sets no speed target; what is watched:
(a) DiceBCE forward+backward against a bare BCE + Dice written inline (the cost of input checks and float32
casting) and against MONAI's DiceCELoss; (b) the boundary loss's distance maps computed per batch against
read from a `DistanceMapCache` (the second epoch over the same items), and scipy against the torch backend on CPU.
"""
import argparse, os, time, warnings

os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
import torch
import torch.nn.functional as F

from segcourse.losses import get_loss, boundary_loss, distance_maps, DistanceMapCache
from timing import best_times

warnings.filterwarnings('ignore')


def report(case, ours, baselines):
    print(f"\n({case}) segcourse: {ours*1e3:.1f} ms")
    for name, t in baselines.items():
        print(f"    {name:<44s} {t*1e3:9.1f} ms   ratio {t/ours:6.2f}")


def batch(n, size, seed=0):
    "Logits and lesion-like targets: a disc in half of the images, the rest empty."
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    target = torch.zeros(n, 1, size, size)
    for i in range(0, n, 2):
        cy, cx, r = torch.randint(size // 4, 3 * size // 4, (2,), generator=gen).tolist() + [size // 10 + i]
        target[i, 0] = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).float()
    return torch.randn(n, 1, size, size, generator=gen), target


def bare_dice_bce(logits, target):
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - dice).mean()


def fwd_bwd(loss, logits, target):
    def run():
        x = logits.clone().requires_grad_()
        loss(x, target).backward()
    return run


def main(repeats, n, size):
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    logits, target = batch(n, size)
    fs = {'ours': fwd_bwd(get_loss('dice_bce'), logits, target), 'bare BCE + Dice inline': fwd_bwd(bare_dice_bce, logits, target)}
    try:
        from monai.losses import DiceCELoss
        fs['MONAI DiceCELoss(sigmoid=True)'] = fwd_bwd(DiceCELoss(sigmoid=True, smooth_nr=1., smooth_dr=1.), logits, target)
    except ImportError: print("MONAI not installed: its baseline is skipped")
    t = best_times(fs, repeats)
    report(f'a: DiceBCE forward+backward, {n}x1x{size}x{size}', t.pop('ours'), t)

    cache = DistanceMapCache(maxsize=4 * n)
    distance_maps(target, cache=cache)  # the first epoch fills the cache
    t = best_times({'ours': lambda: boundary_loss(logits, target, cache=cache),
                    'maps computed per batch (scipy)': lambda: boundary_loss(logits, target)}, repeats)
    t['maps computed per batch (torch on CPU)'] = best_times({'torch': lambda: distance_maps(target, backend='torch')}, 1)['torch']
    report(f'b: boundary loss with cached maps, {n}x1x{size}x{size}', t.pop('ours'), t)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--size', type=int, default=256)
    a = ap.parse_args()
    main(a.repeats, a.batch, a.size)
