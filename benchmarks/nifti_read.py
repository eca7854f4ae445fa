"""How fast NIfTI volumes are read: volumes per second for 128 x 128 x 64 `.nii.gz` files (one channel and a label)
through `NiftiDataset`, with the cache (every decoded volume kept) and without it (the last few kept), and
`read_volume` (nibabel's decoding alone) for reference. One run on an idle machine:

    python benchmarks/nifti_read.py --volumes 8
"""
import argparse, tempfile, time
from pathlib import Path

import numpy as np
import nibabel as nib

from segcourse.core import set_threads
from segcourse.data.nifti import NiftiDataset, read_volume
from timing import seconds

def write_volumes(root:Path, n:int, shape=(128, 128, 64)) -> Path:
    rng = np.random.default_rng(0)
    affine = np.diag([1., 1., 3., 1.])
    for k in range(n):
        image = rng.normal(300, 60, shape).astype(np.float32)
        label = np.zeros(shape, np.uint8); label[40:80, 40:80, 20:40] = 1
        nib.save(nib.Nifti1Image(image, affine), root/f'case{k:03d}.nii.gz')
        nib.save(nib.Nifti1Image(label, affine), root/f'case{k:03d}_seg.nii.gz')
    return root

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--volumes', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    set_threads(args.threads)
    root = write_volumes(Path(tempfile.mkdtemp()), args.volumes)
    n, rows = args.volumes, []
    files = sorted(root.glob('case???.nii.gz'))
    rows.append(('read_volume (image and label decoded)', n / seconds(lambda: [read_volume(f) or read_volume(str(f).replace('.nii.gz', '_seg.nii.gz')) for f in files])))
    cached = None
    def build(): nonlocal cached; cached = NiftiDataset(root)
    rows.append(('NiftiDataset(cache=True): opening (every volume read once)', n / seconds(build)))
    rows.append(('  then every slice, in order', n / seconds(lambda: [cached[i] for i in range(len(cached))])))
    lean = NiftiDataset(root, cache=False)
    rows.append(('NiftiDataset(cache=False): every slice, in order', n / seconds(lambda: [lean[i] for i in range(len(lean))])))
    order = np.random.default_rng(0).permutation(len(lean))[:len(lean) // 8]
    t = seconds(lambda: [lean[int(i)] for i in order])
    rows.append(('  an eighth of the slices in random order (as volumes per second of slices)', len(order) / len(lean) * n / t))
    print(f"{n} volumes of 128 x 128 x 64 float32 (.nii.gz, with uint8 labels), {args.threads} threads")
    for name, rate in rows: print(f"  {name:<78} {rate:8.2f} volumes/s")

if __name__ == '__main__': main()
