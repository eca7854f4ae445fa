"""Sliding-window inference speed (issue 10): segcourse against MONAI on the same model and settings.

Two cases, one torch thread, a small U-Net (features 8, 16, 32, 64) in eval mode, Gaussian blending,
`sw_batch_size=8`:

- a 512x512 image with 128x128 windows and overlap 0.5 (49 windows);
- a 128x256x256 volume slice by slice with 128x128 windows and overlap 0.5 (9 windows a slice,
  1152 windows). MONAI has no slice-by-slice mode: it runs with `roi_size=(1, 128, 128)`, overlap
  `(0, 0.5, 0.5)` and the 2D model wrapped to drop and restore the depth axis, the usual recipe.

Both implementations run interleaved (`--repeats` pairs, alternating which runs first, best of each kept) in one process, and their
outputs are compared. Times are wall-clock and CPU-seconds of this process (with one thread, the time
on a core of its own); ratios use CPU-seconds, so other load on a shared machine matters less.
Goal: segcourse no slower than MONAI (ratio MONAI / segcourse >= 1).

    python benchmarks/inference.py [--repeats 3] [--depth 128]
"""
import argparse, os, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
from timing import timed


class Slicewise(torch.nn.Module):
    "A 2D model applied to `N C 1 h w` windows (MONAI's way of running a 2D model on a volume)."
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, x): return self.model(x[:, :, 0])[:, :, None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--depth', type=int, default=128, help='slices of the volume')
    args = ap.parse_args()
    torch.set_num_threads(1)
    from segcourse.inference.windows import sliding_window_inference, window_slices
    from segcourse.models.registry import get_model
    try:
        from monai.inferers import sliding_window_inference as monai_swi
    except ImportError:
        monai_swi = None; print('MONAI is not installed: segcourse timings only')
    torch.manual_seed(0)
    model = get_model('unet', features=(8, 16, 32, 64)).eval()
    image = torch.randn(1, 1, 512, 512)
    volume = torch.randn(1, 1, args.depth, 256, 256)
    cases = {
        '512x512 image': dict(
            ours=lambda: sliding_window_inference(model, image, (128, 128), 0.5, sw_batch_size=8),
            monai=lambda: monai_swi(image, (128, 128), 8, model, overlap=0.5, mode='gaussian'),
            windows=len(window_slices((512, 512), (128, 128), 0.5))),
        f'{args.depth}x256x256 volume, slice by slice': dict(
            ours=lambda: sliding_window_inference(model, volume, (128, 128), 0.5, sw_batch_size=8),
            monai=lambda: monai_swi(volume, (1, 128, 128), 8, Slicewise(model), overlap=(0, 0.5, 0.5), mode='gaussian'),
            windows=args.depth * len(window_slices((256, 256), (128, 128), 0.5))),
    }
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"torch {torch.__version__}, 1 thread, U-Net (8, 16, 32, 64), sw_batch_size 8, Gaussian blending, overlap 0.5")
    with torch.no_grad():
        for name, c in cases.items():
            best = {}
            for k in range(args.repeats):  # alternate which one runs first
                for impl in (('ours', 'monai') if k % 2 == 0 else ('monai', 'ours')) if monai_swi else ('ours',):
                    out, wall, cpu = timed(c[impl])
                    b = best.setdefault(impl, [out, wall, cpu]); b[1], b[2] = min(b[1], wall), min(b[2], cpu)
            print(f"\n{name}: {c['windows']} windows of 128x128")
            for impl, (out, wall, cpu) in best.items():
                print(f"  {impl:<6} wall {wall:7.3f} s  cpu {cpu:7.3f} s  {c['windows'] / cpu:7.1f} windows/cpu-s")
            if monai_swi:
                diff = (best['ours'][0] - best['monai'][0]).abs().max().item()
                print(f"  MONAI / segcourse (cpu-s): {best['monai'][2] / best['ours'][2]:.2f}x, "
                      f"wall: {best['monai'][1] / best['ours'][1]:.2f}x; max |difference| {diff:.1e}")


if __name__ == '__main__': main()
