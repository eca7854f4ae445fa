"""Speed of segcourse's metrics against baselines measured in the same run (issue 6).

    OMP_NUM_THREADS=1 python benchmarks/metrics.py [--repeats 5] [--skip-medpy]

Each case prints the best-of-`repeats` time of segcourse and of each baseline, and their ratio
(baseline time / segcourse time: above 1 means segcourse is faster). Peers (MONAI, surface-distance,
medpy) are benchmark-only dependencies and are skipped when not installed. Targets from the issue:
(a) overlap metrics within 1.5x of a bare count (ratio >= 0.67); (b) and (c) at least 2x faster than
the fastest peer (ratio >= 2); (d) a 101-threshold sweep at most 3x one evaluation (ratio >= 0.33).
"""
import argparse, os, time, warnings

os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
import torch
from scipy import ndimage as ndi

from segcourse.metrics import distance_metrics, hd95, compute_metrics, confusion, sweep_thresholds
from timing import best_time

warnings.filterwarnings('ignore')


def report(case, ours, baselines, goal):
    print(f"\n({case}) segcourse: {ours*1e3:.1f} ms")
    for name, t in baselines.items():
        print(f"    {name:<40s} {t*1e3:9.1f} ms   ratio {t/ours:6.2f}")
    if baselines:
        fastest = min(baselines, key=baselines.get)
        print(f"    vs fastest ({fastest}): ratio {baselines[fastest]/ours:.2f}  [goal: {goal}]")


def blob(shape, centre, radii, seed):
    "A smooth-edged ellipsoid with a noisy boundary."
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)))
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 3)
    return d + noise * 0.5 < 1


def case_a(repeats):
    g = torch.Generator().manual_seed(0)
    p = torch.rand(64, 1, 256, 256, generator=g) > 0.5
    t = torch.rand(64, 1, 256, 256, generator=g) > 0.7
    names = ('dice', 'iou', 'sensitivity', 'specificity', 'precision')
    ours = best_time(lambda: compute_metrics(p, t, names), repeats)

    def bare_torch():
        pf, tf = p.flatten(1), t.flatten(1)
        return (pf & tf).sum(1), (pf & ~tf).sum(1), (~pf & tf).sum(1), (~pf & ~tf).sum(1)
    pn, tn = p.numpy().reshape(64, -1), t.numpy().reshape(64, -1)

    def bare_numpy():
        return (pn & tn).sum(1), (pn & ~tn).sum(1), (~pn & tn).sum(1), (~pn & ~tn).sum(1)

    def bare_count_nonzero():  # the fastest bare NumPy way found: per-row count_nonzero
        nz = lambda a: np.array([np.count_nonzero(r) for r in a])
        tp, n_pred, n_true = nz(pn & tn), nz(pn), nz(tn)
        return tp, n_pred - tp, n_true - tp, pn.shape[1] - n_pred - n_true + tp
    report('a: 5 overlap metrics, 64 x 256x256 (bool masks)', ours,
           {'bare torch: 4 counts (p&t, p&~t, ...)': best_time(bare_torch, repeats),
            'bare numpy: 4 counts (p&t, p&~t, ...)': best_time(bare_numpy, repeats),
            'bare numpy: count_nonzero per row': best_time(bare_count_nonzero, repeats)},
           'ratio >= 0.67 (within 1.5x)')


def case_b(repeats, skip_medpy):
    shape, sp = (160, 192, 160), (1.0, 1.0, 1.5)
    a = blob(shape, (80, 96, 80), (45, 55, 40), 0); b = blob(shape, (84, 92, 82), (43, 57, 38), 1)
    ours = best_time(lambda: distance_metrics(a, b, ('hd95', 'assd'), spacing=sp), repeats)
    peers = {}
    try:
        from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
        A, B = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
        peers['MONAI hausdorff(95) + average_surface'] = best_time(
            lambda: (compute_hausdorff_distance(A, B, percentile=95, spacing=sp),
                     compute_average_surface_distance(A, B, symmetric=True, spacing=sp)), repeats)
    except ImportError: print("MONAI not installed: skipped")
    try:
        import surface_distance as sd
        peers['surface-distance robust_hd + avg'] = best_time(
            lambda: (lambda d: (sd.compute_robust_hausdorff(d, 95), sd.compute_average_surface_distance(d)))(
                sd.compute_surface_distances(a, b, sp)), repeats)
    except ImportError: print("surface-distance not installed: skipped")
    if not skip_medpy:
        try:
            from medpy.metric import binary as mb
            peers['medpy hd95 + assd'] = best_time(lambda: (mb.hd95(a, b, sp), mb.assd(a, b, sp)), 1)
        except ImportError: print("medpy not installed: skipped")
    peers['one full-volume distance_transform_edt'] = best_time(lambda: ndi.distance_transform_edt(~a, sampling=sp), 1)
    report('b: HD95 + ASSD, 3D 160x192x160, spacing (1,1,1.5)', ours, peers, 'ratio >= 2 vs the fastest peer')


def case_c(repeats, skip_medpy):
    rng = np.random.default_rng(0)
    P = np.stack([blob((256, 256), rng.uniform(70, 186, 2), rng.uniform(12, 45, 2), i) for i in range(64)])
    T = np.stack([(ndi.binary_dilation(m, iterations=2) if i % 2 else blob((256, 256), rng.uniform(70, 186, 2), rng.uniform(12, 45, 2), 100 + i))
                  for i, m in enumerate(P)])
    P4, T4 = P[:, None], T[:, None]
    ours = best_time(lambda: hd95(P4, T4), repeats)
    peers = {}
    try:
        import surface_distance as sd
        peers['surface-distance (loop)'] = best_time(
            lambda: [sd.compute_robust_hausdorff(sd.compute_surface_distances(P[i], T[i], (1., 1.)), 95) for i in range(64)], repeats)
    except ImportError: print("surface-distance not installed: skipped")
    try:
        from monai.metrics import compute_hausdorff_distance
        Pt, Tt = torch.from_numpy(P4), torch.from_numpy(T4)
        peers['MONAI compute_hausdorff_distance (batch)'] = best_time(lambda: compute_hausdorff_distance(Pt, Tt, percentile=95), repeats)
    except ImportError: print("MONAI not installed: skipped")
    if not skip_medpy:
        try:
            from medpy.metric import binary as mb
            peers['medpy hd95 (loop)'] = best_time(lambda: [mb.hd95(P[i], T[i]) for i in range(64)], 1)
        except ImportError: print("medpy not installed: skipped")
    report('c: HD95, 64 pairs of 256x256', ours, peers, 'ratio >= 2 vs the fastest peer')


def case_d(repeats):
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(500, 1, 256, 256, generator=g)
    target = torch.rand(500, 1, 256, 256, generator=g) < probs
    ours = best_time(lambda: sweep_thresholds(probs, target, thresholds=101), repeats)
    single = best_time(lambda: compute_metrics(probs, target, threshold=0.5), repeats)
    counts = best_time(lambda: confusion(probs, target, threshold=0.5), repeats)
    print(f"\n(d) 101-threshold sweep, 500 x 256x256: {ours*1e3:.1f} ms")
    print(f"    one evaluation (compute_metrics at 0.5): {single*1e3:.1f} ms; sweep / one = {ours/single:.2f}  [goal: <= 3]")
    print(f"    confusion counts only at 0.5:            {counts*1e3:.1f} ms; sweep / one = {ours/counts:.2f}")


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--skip-medpy', action='store_true', help='medpy takes seconds per 3D pair')
    ap.add_argument('--cases', default='abcd')
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    if 'a' in args.cases: case_a(args.repeats)
    if 'b' in args.cases: case_b(args.repeats, args.skip_medpy)
    if 'c' in args.cases: case_c(args.repeats, args.skip_medpy)
    if 'd' in args.cases: case_d(args.repeats)
