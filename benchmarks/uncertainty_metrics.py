"""Speed of GED and Hungarian-matched IoU against the batched confusion counts they are built from (issue 9).

    OMP_NUM_THREADS=1 python benchmarks/uncertainty_metrics.py [--images 1000] [--size 128] [--repeats 3]

1,000 images of 128x128, 16 samples (S N 1 H W) and 4 annotators (N A H W), as boolean masks (discs of
random centre and radius, so the IoUs are neither all 0 nor all 1). For each metric, the time of the
metric (input checks, counts, IoU, means or matching) is compared with the time of only the pairwise
confusion counts it needs, computed as the metric computes them (`_pair_counts`, the one-pass form of
`pairwise_confusion`): samples x annotators, samples x samples and annotators x annotators for GED;
samples x annotators for the Hungarian IoU. Goal: metric time at most
3x the counts (ratio metric/counts <= 3). Best of `repeats` wall times, 1 thread; `uptime` is printed
because the machine is shared.
"""
import argparse, os, subprocess, time

os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch

from segcourse.metrics.uncertainty import _pair_counts, generalized_energy_distance, hungarian_iou, pairwise_confusion
from timing import best_time


def discs(shape, size, g, chunk=100):
    "Boolean discs of random centre and radius, `shape + (size, size)`, built in chunks of the first axis of N."
    n = shape[0]
    out = torch.empty(shape + (size, size), dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    for i in range(0, n, chunk):
        s = (min(chunk, n - i),) + shape[1:] + (1, 1)
        cy, cx = (size * (0.4 + 0.2 * torch.rand(s, generator=g)) for _ in range(2))
        r = size * 0.25 * torch.rand(s, generator=g)  # some radii below one pixel: empty masks
        out[i:i + chunk] = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    return out


def main(images=1000, size=128, samples=16, annotators=4, repeats=3):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    ann = discs((images, annotators), size, g)  # N A H W
    smp = discs((images, samples), size, g).transpose(0, 1).unsqueeze(2)  # S N 1 H W (a view)
    s, y = smp[:, :, 0].flatten(2).transpose(0, 1), ann.flatten(2)  # N S P and N A P, as the metrics see them
    print(f"{images} images {size}x{size}, {samples} samples, {annotators} annotators (boolean masks), 1 thread")
    print("uptime:", subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip())

    # the counts GED needs, in one pass over the masks (each set converted to float once per chunk): what GED itself calls
    counts_ged = best_time(lambda: _pair_counts([s, y], [(0, 1), (0, 0), (1, 1)]), repeats)
    ged = best_time(lambda: generalized_energy_distance(smp, ann), repeats)
    counts_hun = best_time(lambda: pairwise_confusion(s, y), repeats)
    hun = best_time(lambda: hungarian_iou(smp, ann), repeats)
    for name, t, c in (('GED', ged, counts_ged), ('Hungarian IoU', hun, counts_hun)):
        print(f"{name:<14s} {t:7.3f} s   its counts {c:7.3f} s   ratio metric/counts {t / c:5.2f}  [goal <= 3]")
    print("uptime:", subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip())


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', type=int, default=1000); ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--samples', type=int, default=16); ap.add_argument('--annotators', type=int, default=4)
    ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    main(a.images, a.size, a.samples, a.annotators, a.repeats)
